"""The test guest: module dependency order, serial-log parsing, cmdline, and a real boot under QEMU."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from provision.kvm import guestlog
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
"""


def test_parse_serial_reads_every_fact_even_after_kernel_noise():
    r = guestlog.parse_serial(SERIAL)
    assert r.boot_uptime_s == 2.20 and r.done and r.done_uptime_s == 18.18
    assert r.ignition == {"sha256": "ab12", "bytes": "33", "t": "2.47"}
    assert r.nics == [{"name": "eth0", "mac": "02:aa:bb:cc:dd:ee", "t": "2.49"}]
    assert r.dhcp["ip"] == "198.18.4.10" and r.dns["api"] == "198.18.4.5"
    assert r.probe("fsync")[0]["p99_ms"] == "45.9"
    assert r.errors == ["probe rtt error=no_peer"]


def test_parse_serial_of_a_guest_still_booting_is_not_done():
    r = guestlog.parse_serial(SERIAL.split("OKDBENCH dhcp")[0])
    assert not r.done and r.dhcp == {} and r.boot_uptime_s == 2.20


def test_wait_for_guests_names_the_ones_pending(tmp_path):
    done, pending = tmp_path / "a.log", tmp_path / "b.log"
    done.write_text(SERIAL)
    pending.write_text(SERIAL.split("OKDBENCH done")[0])
    with pytest.raises(guestlog.GuestTimeout, match=r"guests b did not finish.*b: rtt"):
        guestlog.wait_for_guests({"a": done, "b": pending}, timeout_s=0.2, poll_s=0.05)
    assert guestlog.wait_for_guests({"a": done}, timeout_s=1)["a"].done


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
    """No libvirt and no NIC here (the KVM integration test covers DHCP/DNS): fw_cfg, disk probes, poweroff."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    ign = tmp_path / "node.ign"
    ign.write_text(json.dumps({"ignition": {"version": "3.2.0"}, "storage": {"files": []}}))
    disk = tmp_path / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    serial = tmp_path / "serial.log"
    cmdline = testguest.BASE_CMDLINE + " okdbench.probes=cpu,fsync,seqwrite okdbench.repeat=2 okdbench.cpu_mib=4"
    proc = run_bounded(
        [qemu, "-machine", "q35", "-accel", "tcg", "-m", "256", "-smp", "1", "-display", "none", "-no-reboot",
         "-nic", "none", "-serial", f"file:{serial}", "-kernel", str(test_guest.kernel), "-initrd",
         str(test_guest.initrd), "-append", cmdline, "-fw_cfg", f"name=opt/com.coreos/config,file={ign}",
         "-drive", f"file={disk},if=virtio,format=qcow2"],
        capture_output=True, text=True,
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
