"""KVM conditions from a real libvirtd + QEMU: a busy test guest, then a CPU burner on the host; the
guest's vCPU delay (libvirt vcpu.N.delay) rises and the run is flagged as contended."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from provision.kvm import stats as kvm_stats
from provision.kvm.stats import Snapshot
from provision.spec import parse_spec
from reports import conditions
from results.schema import RunInfo
from results.store import RunWriter, load_runs
from suites.context.capture import Capture
from suites.context.session import sample_of

ROOT = Path(__file__).resolve().parents[1]
NAME = "conditions15"


def snap(t, delay, vcpus=2, others=1, other_vcpus=4, busy=0, idle=0, free=4, swap=None, block=(0, 0)):
    stats = {"vcpu.current": vcpus, "vcpu.maximum": vcpus, "block.count": 1,
             "block.0.rd.reqs": block[0], "block.0.rd.times": block[1], "block.0.wr.reqs": 0, "block.0.wr.times": 0,
             "balloon.current": 900, "balloon.maximum": 1000}
    for i in range(vcpus):
        stats[f"vcpu.{i}.delay"] = delay / vcpus
    if swap is not None:
        stats["balloon.swap_in"], stats["balloon.swap_out"] = swap, 0
    doms = {} if delay is None else {"c-worker-0": stats}
    return Snapshot(t, doms, others, other_vcpus, other_vcpus + (vcpus if doms else 0), 2,
                    {"kernel": busy, "user": 0, "idle": idle, "iowait": 0}, {"total": 8, "free": free, "buffers": 0, "cached": 0})


def test_window_readings_from_snapshots():
    snaps = [snap(0.0, 0, busy=0, idle=0, block=(0, 0)), snap(1.0, 0.2e9, busy=1e9, idle=1e9, free=2, block=(10, 20e6)),
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
def busy_guest(libvirt_uri, test_guest, vmroot):
    """One 1-vCPU test guest hashing in a loop (okdbench.probes=cpu, many repetitions), on its own pool."""
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open(libvirt_uri)
    pool_dir = vmroot / "pool"
    pool_dir.mkdir(exist_ok=True)
    pool = conn.storagePoolDefineXML(f"<pool type='dir'><name>{NAME}-pool</name><target><path>{pool_dir}</path></target></pool>")
    pool.create()
    spec = parse_spec({
        "name": NAME, "base_domain": "okdbench.test", "platform": "kvm", "okd": {"guest": "testguest"},
        "network": {"machine_cidr": "198.18.215.0/24"},
        "nodes": [{"role": "worker", "count": 1, "vcpu": 1, "memory": "256MiB", "disk": "1GiB"}],
        "kvm": {"storage_pool": f"{NAME}-pool", "kernel": str(test_guest.kernel), "initrd": str(test_guest.initrd),
                "domain_type": "auto", "kernel_args": "okdbench.probes=cpu okdbench.repeat=400 okdbench.cpu_mib=8 okdbench.timeout=600"},
    })
    from provision.kvm import platform as kvm

    try:
        result = kvm.provision(spec, vmroot / "work")
        serial = result.vms[0].serial_log
        last, t_last = "", time.monotonic()
        while "OKDBENCH probe cpu" not in last:  # busy from the first probe on; bounded by lack of progress
            text = serial.read_text(errors="replace") if serial.exists() else ""
            if text != last:
                last, t_last = text, time.monotonic()
            elif time.monotonic() - t_last > 120:
                pytest.fail(f"the guest made no progress for 120 s: {last[-500:]}")
            time.sleep(0.5)
        # The vCPU and the test's burner share host CPU 0, so the burner contends with the guest whatever
        # else the machine runs.
        conn.lookupByName(f"{NAME}-worker-0").pinVcpu(0, (True,) + (False,) * (conn.getInfo()[2] - 1))
        yield spec
    finally:
        kvm.destroy(spec)
        for vol in pool.listAllVolumes():
            vol.delete(0)
        pool.destroy()
        pool.undefine()
        conn.close()


@pytest.mark.slow
@pytest.mark.needs_libvirtd
def test_cpu_burner_on_the_host_raises_vcpu_delay_and_flags_the_run(busy_guest, tmp_path):
    stress = shutil.which("stress-ng")
    if stress is None:
        pytest.skip("stress-ng not installed (Debian package stress-ng)")
    spec = busy_guest
    writer = RunWriter(tmp_path, RunInfo(run_id="r-loaded", platform="kvm", cluster=NAME, started="2026-01-01T00:00:00+00:00"))
    cfg = type("Cfg", (), {"run_id": "r-loaded", "label": "kvm"})()
    recorded: dict[str, list] = {}

    def record(reading, window, rep, source):
        recorded.setdefault(window, []).append(reading)
        writer.record_sample(sample_of(reading, window, rep, source, cfg, NAME))

    notes: list[str] = []
    cap = Capture(record, notes.append, interval_s=0.5)
    cap.add(kvm_stats.open_stats(spec))
    with cap.window("quiet"):
        time.sleep(3)
    burner = subprocess.Popen([stress, "--cpu", "4", "--taskset", "0", "--timeout", "120", "--quiet"])
    try:
        time.sleep(0.5)
        with cap.window("loaded", 1):
            time.sleep(4)
    finally:
        burner.terminate()
        burner.wait(timeout=30)
    cap.close()
    writer.finish("complete")
    assert notes == []

    def wait(window):
        return next(r.value for r in recorded[window] if r.metric == "context.hv.cpu.wait" and r.node == "worker-0")

    print(f"vCPU delay: quiet {wait('quiet'):.1%}, with 4 CPU burners on the vCPU's host CPU {wait('loaded'):.1%}")
    assert wait("loaded") > 0.05
    host = {r.metric: r.value for r in recorded["loaded"] if r.node.startswith("host:")}
    assert host["context.host.cpu.busy"] > 0.5 and 0 < host["context.host.memory.available"] <= 1
    assert host["context.host.vcpu_ratio"] > 0 and host["context.host.other_vms"] >= 0
    ctx = load_runs([tmp_path]).samples
    [run] = conditions.contended_runs(ctx)
    assert run.run_id == "r-loaded" and any("waited" in r for r in run.reasons)
