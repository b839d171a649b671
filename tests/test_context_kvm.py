"""KVM conditions from a real libvirtd + QEMU: a busy test guest, then a CPU burner on the host; the
guest's vCPU delay (libvirt vcpu.N.delay) rises and the run is flagged as contended."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from provision.kvm import stats as kvm_stats
from provision.kvm.stats import Snapshot
from results.schema import RunInfo
from results.store import RunWriter, load_runs
from suites.context.session import sample_of

ROOT = Path(__file__).resolve().parents[1]
NAME = "conditions15"


def snap(t, delay, vcpus=2, others=1, other_vcpus=4, busy=0, idle=0, free=4, swap=None, block=(0, 0)):
    stats = {"vcpu.current": vcpus, "vcpu.maximum": vcpus}
    if block is not None:  # a full snapshot (window start/end); the samples between have no block/balloon stats
        stats |= {"block.count": 1, "block.0.rd.reqs": block[0], "block.0.rd.times": block[1], "block.0.wr.reqs": 0,
                  "block.0.wr.times": 0, "balloon.current": 900, "balloon.maximum": 1000}
    for i in range(vcpus):
        stats[f"vcpu.{i}.delay"] = delay / vcpus
    if swap is not None:
        stats["balloon.swap_in"], stats["balloon.swap_out"] = swap, 0
    doms = {} if delay is None else {"c-worker-0": stats}
    return Snapshot(t, doms, others, other_vcpus, other_vcpus + (vcpus if doms else 0), 2,
                    {"kernel": busy, "user": 0, "idle": idle, "iowait": 0}, {"total": 8, "free": free, "buffers": 0, "cached": 0})


def test_window_readings_from_snapshots():
    snaps = [snap(0.0, 0, busy=0, idle=0, block=(0, 0)), snap(1.0, 0.2e9, busy=1e9, idle=1e9, free=2, block=None),
             snap(2.0, 0.4e9, busy=2e9, idle=2e9, block=(20, 40e6))]
    got = {r.metric: r for r in kvm_stats.window_readings(snaps, {"c-worker-0": "worker-0"}, "h")}
    assert got["context.hv.cpu.wait"].value == pytest.approx(0.1)  # 0.4 s of delay over 2 s on 2 vCPUs
    assert got["context.hv.disk.latency"].value == pytest.approx(2.0)  # 40 ms over 20 requests
    assert got["context.hv.memory.ballooned"].value == pytest.approx(0.1)
    assert got["context.host.cpu.busy"].value == pytest.approx(0.5) and got["context.host.cpu.busy"].node == "host:h"
    assert got["context.host.memory.available"].value == pytest.approx(0.25) and got["context.host.memory.available"].better == "higher"
    assert got["context.host.vcpu_ratio"].value == pytest.approx(3.0)  # (4 + 2) vCPUs on 2 CPUs
    assert got["context.host.other_vms"].value == 1 and got["context.host.other_vcpus"].value == 4
    assert "context.hv.memory.swap" not in got  # no balloon stats period: no swap counters, no made-up zero


def test_a_restarted_domain_counts_only_intervals_where_its_counters_grew():
    snaps = [snap(0.0, 5e9), snap(1.0, 5.5e9, swap=0), snap(2.0, 0.1e9, swap=0), snap(3.0, 0.6e9, swap=64)]
    got = {r.metric: r.value for r in kvm_stats.window_readings(snaps, {"c-worker-0": "worker-0"}, "h")}
    assert got["context.hv.cpu.wait"] == pytest.approx((0.5e9 + 0.5e9) / 1e9 / 2 / 2)
    assert got["context.hv.memory.swap"] == pytest.approx(32.0)  # 64 KiB over the 2 s its counters exist and grow


# ------------------------------------------------------------------ real libvirtd + QEMU


@pytest.fixture(scope="module")
def vmroot():
    d = ROOT / ".cache" / "kvm-tests" / NAME
    d.mkdir(parents=True, exist_ok=True)
    for p in (d, d.parent, d.parent.parent):
        p.chmod(p.stat().st_mode | 0o011)  # libvirt's qemu user reaches the volumes and serial logs
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def pool(libvirt_uri, vmroot):
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open(libvirt_uri)
    pool_dir = vmroot / "pool"
    pool_dir.mkdir(exist_ok=True)
    p = conn.storagePoolDefineXML(f"<pool type='dir'><name>{NAME}-pool</name><target><path>{pool_dir}</path></target></pool>")
    p.create()
    yield p.name()
    for vol in p.listAllVolumes():
        vol.delete(0)
    p.destroy()
    p.undefine()
    conn.close()


@pytest.mark.slow
@pytest.mark.needs_libvirtd
def test_suites_run_under_a_host_cpu_burner_records_vcpu_delay_and_is_flagged(libvirt_uri, test_guest, pool, vmroot, tmp_path):
    """`pytest suites/ --platform=kvm --spec` of a busy test guest while okdbench's host-load burner
    (the demo's --load-host) runs: the guests' window gets libvirt conditions and the report flags the run."""
    from okdbench import hostload
    from okdbench.cli import main

    spec = {
        "name": NAME, "base_domain": "okdbench.test", "platform": "kvm", "okd": {"guest": "testguest"},
        "network": {"machine_cidr": "198.18.215.0/24"},
        "nodes": [{"role": "worker", "count": 1, "vcpu": 1, "memory": "256MiB", "disk": "1GiB"}],
        "kvm": {"storage_pool": pool, "kernel": str(test_guest.kernel), "initrd": str(test_guest.initrd), "domain_type": "auto",
                "kernel_args": "okdbench.probes=cpu okdbench.repeat=10 okdbench.cpu_mib=4 okdbench.timeout=600"},
    }
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(json.dumps(spec))
    results = tmp_path / "results"
    env = dict(os.environ, OKDBENCH_WORKDIR=str(vmroot / "work"))
    burner = hostload.start()
    stop = threading.Event()
    pinner = threading.Thread(target=pin_to_cpu0, args=(burner.pid, NAME, stop), daemon=True)
    pinner.start()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "suites/test_guest_boot.py", "--platform=kvm", "--label=kvm-loaded",
                               f"--spec={spec_path}", f"--results-dir={results}", "--context-interval=1",
                               "-p", "no:cacheprovider", "-q"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    finally:
        stop.set()
        pinner.join()
        hostload.stop(burner)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    runs = load_runs([results])
    ctx = runs.samples[runs.samples["suite"] == "context"].copy()
    ctx["labels"] = ctx["labels"].map(json.loads)
    assert {(lab["window"], lab["source"]) for lab in ctx["labels"]} == {("guests.run", "libvirt")}
    wait = ctx[ctx["metric"] == "context.hv.cpu.wait"]
    assert [lab["node"] for lab in wait["labels"]] == ["worker-0"]
    print(f"vCPU delay of the guest under the burner: {wait['value'].iloc[0]:.1%}")
    # Burner and guest share host CPU 0: the vCPU queues behind the burner (unpinned, an idle 2-CPU
    # host let the vCPU keep a CPU to itself: 3-7 %), so the run is contended whatever the host.
    delay = float(wait["value"].iloc[0])
    assert 0.05 < delay <= 1
    assert {"context.host.cpu.busy", "context.host.vcpu_ratio", "context.host.other_vms"} <= set(ctx["metric"])
    assert "hypervisor side not captured" not in " ".join(runs.runs[0].warnings)

    # A quiet baseline run beside it: the report's Conditions section flags the loaded run.
    write_quiet_run(results)
    out = tmp_path / "report.html"
    assert main(["report", str(results), "--baseline", "quiet", "--candidate", "kvm-loaded", "--out", str(out)]) == 0
    html = out.read_text()
    run_id = runs.runs[0].run_id
    assert 'id="conditions"' in html and "1 contended run" in html and run_id in html


def pin_to_cpu0(burner_pgid: int, name: str, stop: threading.Event) -> None:
    """Keep the burner's processes and every thread of the guest's QEMU on host CPU 0."""
    while not stop.wait(0.2):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                mine = os.getpgid(int(pid)) == burner_pgid or (b"qemu" in cmd and f"guest={name}".encode() in cmd)
                if mine:
                    for tid in os.listdir(f"/proc/{pid}/task"):
                        os.sched_setaffinity(int(tid), {0})
            except (OSError, ProcessLookupError):
                continue


def write_quiet_run(results: Path) -> None:
    w = RunWriter(results, RunInfo(run_id="quiet-0", platform="quiet", cluster="q", started="2026-01-01T00:00:00+00:00"))
    cfg = type("Cfg", (), {"run_id": "quiet-0", "label": "quiet"})()
    from provision.base import Reading

    for metric, value in (("context.hv.cpu.wait", 0.004), ("context.host.cpu.busy", 0.2)):
        w.record_sample(sample_of(Reading(metric, value, "ratio", "worker-0"), "guests.run", 0, "libvirt", cfg, "q"))
    w.finish("complete")
