"""The test guest: module dependency order, serial-log parsing, cmdline, and a real boot under QEMU."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from provision.kvm import guestlog, histogram
from provision.kvm import testguest
from provision.spec import parse_spec
from tests.support._bounded_run import run_bounded

SPEC = {
    "name": "tg",
    "base_domain": "example.test",
    "platform": "kvm",
    "okd": {"guest": "testguest"},
    "network": {"machine_cidr": "198.18.4.0/24"},
    "nodes": [{"role": "worker", "count": 3, "vcpu": 1, "memory": "256MiB", "disk": "1GiB"}],
    "kvm": {"kernel": "/k", "initrd": "/i", "kernel_args": "okdbench.probes=cpu okdbench.repeat=2"},
}


def test_module_order_puts_dependencies_first_once():
    deps = {"virtio_net": ["net_failover", "virtio", "virtio_ring"], "net_failover": ["failover"], "failover": [],
            "virtio": [], "virtio_ring": [], "virtio_pci": ["virtio", "virtio_ring", "virtio_pci_modern_dev"],
            "virtio_pci_modern_dev": []}
    order = testguest.module_load_order(["virtio_pci", "virtio_net"], deps)
    assert sorted(order) == sorted(set(order)) and set(order) == set(deps)
    for mod, needs in deps.items():
        assert all(order.index(d) < order.index(mod) for d in needs)


def test_module_order_rejects_a_cycle_and_unknown_modules():
    with pytest.raises(ValueError, match="cycle"):
        testguest.module_load_order(["a"], {"a": ["b"], "b": ["a"]})
    with pytest.raises(KeyError):
        testguest.module_load_order(["a"], {"a": ["missing"]})


def test_kernel_cmdline_names_domain_peers_and_spec_args():
    spec = parse_spec(SPEC)
    machines = spec.machines()
    line = testguest.kernel_cmdline(spec, machines[1], extra="okdbench.linger=5")
    assert line.startswith("console=ttyS0 ")
    assert "okdbench.domain=tg.example.test" in line and f"okdbench.name={machines[1].name}" in line
    assert "okdbench.peers=" + ",".join(str(m.ip) for m in machines) in line
    assert line.endswith("okdbench.probes=cpu okdbench.repeat=2 okdbench.linger=5")


SERIAL = """\
SeaBIOS (version 1.16.2-debian-1.16.2-1)
\x1bc\x1b[?7lOKDBENCH boot uptime=2.20 t=2.21
OKDBENCH ignition sha256=ab12 bytes=33 t=2.47
[    2.5] random kernel line OKDBENCH nic name=eth0 mac=02:aa:bb:cc:dd:ee t=2.49
OKDBENCH dhcp ip=198.18.4.10 hostname=worker-0 domain=tg.example.test t=2.70
OKDBENCH dns api=198.18.4.5 name=api.tg.example.test t=2.81
OKDBENCH probe fsync rep=0 disk=vda count=300 bytes=2300 p50_ms=1.7 p99_ms=45.9 iops=255.3 t=6.79
OKDBENCH probe rtt rep=0 error=no_peer t=7
OKDBENCH done t=18.18
OKDBENCH shutdown reason=power_button t=19.02
"""


def test_parse_serial_reads_every_fact_even_after_kernel_noise():
    r = guestlog.parse_serial(SERIAL)
    assert r.boot_uptime_s == 2.20 and r.done and r.done_uptime_s == 18.18
    assert r.ignition == {"sha256": "ab12", "bytes": "33", "t": "2.47"}
    assert r.nics == [{"name": "eth0", "mac": "02:aa:bb:cc:dd:ee", "t": "2.49"}]
    assert r.dhcp["ip"] == "198.18.4.10" and r.dns["api"] == "198.18.4.5"
    assert r.probe("fsync")[0]["p99_ms"] == "45.9"
    assert r.errors == ["probe rtt error=no_peer"]
    assert r.shutdowns == ["power_button"]


def test_parse_serial_of_a_guest_still_booting_is_not_done():
    r = guestlog.parse_serial(SERIAL.split("OKDBENCH dhcp")[0])
    assert not r.done and r.dhcp == {} and r.boot_uptime_s == 2.20


class FakeClock:
    """Time that moves only when the wait sleeps: the silence bound is checked without waiting for real."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def test_wait_gives_up_on_a_silent_guest_after_k_times_its_slowest_step(tmp_path):
    done, stuck = tmp_path / "a.log", tmp_path / "b.log"
    done.write_text(SERIAL)
    stuck.write_text(SERIAL.split("OKDBENCH done")[0])
    clock = FakeClock()
    pace = guestlog.Pace(floor_s=10.0, factor=4.0)
    out = guestlog.wait_for_guests({"a": done, "b": stuck}, pace, poll_s=1.0, clock=clock, sleep=clock.sleep)
    assert out.reports["a"].done and set(out.silent) == {"b"}
    # Slowest step of either log: fsync ended 3.98 s after dns (a: done came 11.18 s after rtt, but
    # that gap is b's current silence, not a step of b; a's own gap counts: 11.18 s).
    assert guestlog.slowest_step_s(out.reports.values()) == pytest.approx(18.18 - 7.0)
    detail = out.silent["b"]
    assert detail.startswith("b went silent after 'probe rtt rep=0' (guest uptime 7.0 s): nothing new for ")
    assert "4 x slowest step 11.2 s" in detail
    # Bounded by the pace, not by a total: it waited just over 4 x 11.18 s.
    assert 4 * 11.18 < clock.now - 1000.0 < 4 * 11.18 + 2


def test_wait_follows_progress_and_a_lingering_guest_gets_its_own_bound(tmp_path):
    log = tmp_path / "a.log"
    lines = [ln for ln in SERIAL.split("OKDBENCH probe rtt")[0].splitlines(keepends=True) if "OKDBENCH" in ln]
    log.write_text("")
    clock = FakeClock()

    def sleep(s):  # one more line every 30 s of host time: slow, but progressing
        clock.sleep(s)
        if lines and clock.now % 30 < s:
            with open(log, "a") as fh:
                fh.write(lines.pop(0))
        elif not lines and "linger" not in log.read_text():
            with open(log, "a") as fh:
                fh.write("OKDBENCH linger peer=198.18.4.11 max_s=500 t=9.0\n")

    out = guestlog.wait_for_guests({"a": log}, guestlog.Pace(floor_s=40.0, factor=1.0), poll_s=1.0, clock=clock, sleep=sleep)
    # Each line came within the 40 s floor, so the wait followed for minutes; then the guest said it
    # would linger up to 500 s: the host gave it 500 s + the floor before calling it silent.
    assert "went silent after 'linger'" in out.silent["a"] and "+ linger 500 s" in out.silent["a"]
    assert clock.now - 1000.0 > len(SERIAL.split("OKDBENCH probe rtt")[0].split("OKDBENCH")) * 30 + 500


def test_a_guest_without_any_line_is_silent_after_the_floor(tmp_path):
    clock = FakeClock()
    out = guestlog.wait_for_guests({"x": tmp_path / "missing.log"}, guestlog.Pace(floor_s=5.0), poll_s=0.5,
                                   clock=clock, sleep=clock.sleep)
    assert re.match(r"x went silent after 'nothing \(no line from /init yet\)': nothing new for [56] s, bound 5 s", out.silent["x"])


def test_histogram_quantiles_interpolate_inside_buckets_like_prometheus():
    b = histogram.parse_buckets("0.001:2,0.002:124,0.004:199,0.008:248,+Inf:250")
    # rank 125 of 250 falls in (0.002, 0.004], which holds observations 125..199
    assert histogram.quantile(0.5, b) == pytest.approx(0.002 + 0.002 * (125 - 124) / (199 - 124))
    assert histogram.quantile(0.99, b) == pytest.approx(0.004 + 0.004 * (247.5 - 199) / (248 - 199))
    assert histogram.quantile(0.999, b) == 0.008  # in +Inf: the largest finite bound
    assert histogram.quantile(0.5, histogram.parse_buckets("0.001:0,+Inf:0")) is None
    for bad in ("0.001:5,0.002:4,+Inf:5", "0.002:1,0.001:2,+Inf:2", "0.001:1", "x", "0.001:1,+Inf:nan"):
        with pytest.raises(ValueError):
            histogram.parse_buckets(bad)


def test_modinfo_reads_the_real_kernel_modules_dependencies(test_guest, tmp_path):
    # The built initramfs carries each module under lib/modules; read them back out of the cpio.
    subprocess.run(["cpio", "-id", "--quiet"], cwd=tmp_path, stdin=open(test_guest.initrd, "rb"), check=True)
    mods = {p.name[:-3]: p for p in (tmp_path / "lib" / "modules").rglob("*.ko")}
    assert {"virtio_net", "virtio_blk", "virtio_pci", "net_failover", "failover", "qemu_fw_cfg"} <= set(mods)
    info = testguest.modinfo(mods["virtio_net"].read_bytes())
    assert set(info["depends"].split(",")) >= {"net_failover"}
    init = (tmp_path / "init").read_text()
    # /init loads each module after everything it depends on.
    order = [Path(line.split()[1]).name[:-3] for line in init.splitlines() if line.startswith("insmod ")]
    for name, path in mods.items():
        for dep in filter(None, testguest.modinfo(path.read_bytes()).get("depends", "").split(",")):
            assert order.index(dep) < order.index(name)


def test_second_build_reuses_the_cache(test_guest):
    cache_dir = test_guest.initrd.parent.parent.parent  # <cache>/testguest/<key>/initrd.img
    before = test_guest.initrd.stat().st_mtime_ns
    again = testguest.build_test_guest(cache_dir)
    assert again == test_guest and again.initrd.stat().st_mtime_ns == before


@pytest.mark.slow
def test_guest_boots_under_qemu_and_reports_ignition_and_probes(test_guest, tmp_path):
    """No libvirt and no NIC here (the KVM integration test covers DHCP/DNS): fw_cfg, disk probes, a real etcd, poweroff."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    ign = tmp_path / "node.ign"
    ign.write_text(json.dumps({"ignition": {"version": "3.2.0"}, "storage": {"files": []}}))
    disk = tmp_path / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "224M"], check=True)
    serial = tmp_path / "serial.log"
    cmdline = testguest.BASE_CMDLINE + (" okdbench.probes=cpu,fsync,seqwrite,etcd okdbench.repeat=2 okdbench.cpu_mib=4"
                                        " okdbench.etcd_mib=160 okdbench.etcd_puts=100")
    proc = run_bounded(
        [qemu, "-machine", "q35", "-accel", "tcg", "-m", "512", "-smp", "1", "-display", "none", "-no-reboot",
         "-nic", "none", "-serial", f"file:{serial}", "-kernel", str(test_guest.kernel), "-initrd",
         str(test_guest.initrd), "-append", cmdline, "-fw_cfg", f"name=opt/com.coreos/config,file={ign}",
         "-drive", f"file={disk},if=virtio,format=qcow2"],
        capture_output=True, text=True,  # bounded by lack of progress; the guest's own watchdog stops it first
    )
    assert proc.returncode == 0, proc.stderr
    r = guestlog.read_report(serial)
    assert r.done, serial.read_text()[-2000:]
    assert r.ignition == {"sha256": hashlib.sha256(ign.read_bytes()).hexdigest(), "bytes": str(ign.stat().st_size),
                          "t": r.ignition["t"]}
    assert r.boot_uptime_s is not None and r.boot_uptime_s > 0
    assert r.errors == ["dhcp error=no_nic", "dns error=no_domain_or_ip"]
    assert [p["rep"] for p in r.probe("fsync")] == ["0", "1"]
    for p in r.probe("fsync"):
        p50, p99, iops = float(p["p50_ms"]), float(p["p99_ms"]), float(p["iops"])
        assert all(math.isfinite(v) and v > 0 for v in (p50, p99, iops)) and p99 >= p50
        assert p["count"] == "300" and p["bytes"] == "2300"
    assert all(float(p["mbps"]) > 0 for p in r.probe("seqwrite") + r.probe("cpu"))
    # The etcd probe: a real etcd on partition 2 of the disk, figures from its own /metrics histograms.
    etcd = r.probe("etcd")
    assert [p["rep"] for p in etcd] == ["0", "1"], r.errors
    for p in etcd:
        assert p["put_count"] == "100" and float(p["put_p99_ms"]) >= float(p["put_p50_ms"]) > 0
        for hist in ("wal", "commit"):
            buckets = histogram.parse_buckets(p[f"{hist}_buckets"])
            total = buckets[-1][1]
            assert total > 0 and total == float(p[f"{hist}_count"]), (hist, p)
            # Sum and quantiles agree with the buckets they come from.
            mean = float(p[f"{hist}_sum"]) / total
            largest_finite, within = buckets[-2]
            assert mean > 0 and (within < total or mean <= largest_finite), (hist, mean, buckets)
            for q in (0.5, 0.99):
                v = histogram.quantile(q, buckets)
                i = next(i for i, (_, c) in enumerate(buckets) if c >= q * total)
                lower = buckets[i - 1][0] if i else 0.0
                assert lower <= v <= buckets[i][0], (hist, q, v, buckets)
        # Every put is one WAL entry fsynced before the reply (etcd batches only concurrent puts).
        assert float(p["wal_count"]) >= 100
    # The synthetic fdatasync probe ran beside it, on partition 1.
    assert {p["disk"] for p in r.probe("fsync")} == {"vda1"}


@pytest.mark.slow
@pytest.mark.needs_libvirtd
def test_a_guest_destroyed_mid_probe_ends_the_run_with_a_clear_criterion(libvirt_uri, test_guest, tmp_path):
    """`virsh destroy` of one guest while it probes: the session stops waiting for it once it has
    been silent longer than the probes' pace allows, records what the other guest measured, and
    the guest.boot criterion names the silent guest and its last step. No total bound anywhere."""
    import sys

    import libvirt
    import yaml

    from okdbench import demo
    from results.store import load_runs

    template = yaml.safe_load((demo.EXAMPLES / "demo-kvm-tuned.yaml").read_text())
    data = demo.demo_spec(template, kernel=test_guest.kernel, initrd=test_guest.initrd, repeat=3,
                          placement=demo.Placement(prefix="demo19-kill-", net_offset=174))
    data["kvm"]["kernel_args"] = "okdbench.probes=cpu,fsync,seqwrite,rtt okdbench.repeat=3"
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    demo.ensure_pool(libvirt_uri)
    work, results = tmp_path / "work", tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "suites/test_guest_boot.py", "suites/test_guest_probes.py", "--platform=kvm",
         "--label=killed", f"--spec={spec_file}", "--repeat=3", f"--results-dir={results}", "-p", "no:cacheprovider"],
        cwd=demo.ROOT, env={**os.environ, "OKDBENCH_WORKDIR": str(work)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    victim = f"{data['name']}-master-0"
    try:
        # Wait (by progress: the serial log must grow within 5 minutes) for the victim's first probe.
        last_size, last_change = -1, time.monotonic()
        while True:
            assert proc.poll() is None, proc.stdout.read()
            logs = list(work.glob(f"*/serial/{victim}.serial.log"))
            text = logs[0].read_text(errors="replace") if logs else ""
            if "OKDBENCH probe cpu rep=0" in text:
                break
            if len(text) != last_size:
                last_size, last_change = len(text), time.monotonic()
            assert time.monotonic() - last_change < 300, f"no progress from {victim}: {text[-500:]}"
            time.sleep(0.5)
        conn = libvirt.open(libvirt_uri)
        try:
            conn.lookupByName(victim).destroy()
        finally:
            conn.close()
        # The guest may have moved past 'probe cpu' before the destroy landed: its last step is what
        # its serial log holds now that QEMU is gone, whichever probe that is.
        victim_said = guestlog.read_report(logs[0])
        last_step = victim_said.last_step
        output = proc.communicate()[0]  # the session's own progress bound ends it; nothing fixed here
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    runs = load_runs([results])
    assert [r.status for r in runs.runs] == ["complete"], output[-3000:]
    crit = runs.criteria.set_index("criterion")
    detail = crit.loc["guest.boot", "detail"]
    assert crit.loc["guest.boot", "status"] == "failed", output[-3000:]
    assert last_step.startswith("probe "), last_step
    assert re.search(rf"{victim} went silent after {re.escape(repr(last_step))} \(guest uptime [\d.]+ s\): nothing new for \d+ s, "
                     r"bound \d+ s = max\(60 s, 4 x slowest step [\d.]+ s\)", detail), detail
    # The survivor finished and its measurements are in the results; the victim's missing ones say why.
    survivor = f"{data['name']}-worker-0"
    assert f"{survivor} went silent" not in detail
    s = runs.samples
    fsync = s[s["metric"] == "guest.disk.fdatasync.p99"]
    from_survivor = fsync["labels"].str.contains('"worker-0"')
    assert sorted(fsync[from_survivor]["repetition"]) == [0, 1, 2]
    # What the victim measured before it died stands, and nothing more of it.
    assert len(fsync[~from_survivor]) == len(victim_said.probe("fsync")), fsync
    assert "no result (" + victim in output or f"master-0: no result ({victim} went silent" in output
    conn = libvirt.open(libvirt_uri)
    try:
        left = [d.name() for d in conn.listAllDomains() if d.name().startswith(data["name"])]
    finally:
        conn.close()
    assert not left, left
