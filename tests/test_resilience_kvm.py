"""Disruptions of a real KVM guest through libvirt: freeze, reset, power off/on, reboot, migration errors.

One test guest boots once for the module (okdbench.gapwatch keeps it up, printing a heartbeat a
second with the host's clock read through its RTC); each test disrupts it through
provision.base's interface and reads from the serial log what the guest lived through.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from provision import base
from provision.kvm import guestlog
from provision.kvm import migrate as kvm_migrate
from provision.kvm.power import PowerError
from provision.spec import parse_spec

pytestmark = [pytest.mark.needs_libvirtd, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "resilience16"
VM = f"{PREFIX}-guest-{os.getpid() % 100000}"
STALL_S = 90.0  # no new serial output for this long: the guest is stuck


def _spec(uri: str):
    return parse_spec({"name": PREFIX, "base_domain": "example.test", "platform": "kvm",
                       "okd": {"guest": "testguest"}, "network": {"machine_cidr": "198.18.16.0/24"},
                       "nodes": [{"role": "worker", "count": 1, "vcpu": 1, "memory": "192MiB", "disk": "1GiB"}],
                       "kvm": {"uri": uri, "kernel": "/k", "initrd": "/i", "domain_type": "qemu"}})


def _domain_xml(test_guest, serial: Path) -> str:
    cmdline = "console=ttyS0 quiet okdbench.gapwatch=3000 okdbench.timeout=3600"
    return f"""<domain type='qemu'>
  <name>{VM}</name>
  <memory unit='MiB'>192</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{test_guest.kernel}</kernel><initrd>{test_guest.initrd}</initrd><cmdline>{cmdline}</cmdline></os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <controller type='usb' model='none'/>
    <serial type='file'><source path='{serial}' append='on'/><target port='0'/></serial>
    <console type='file'><source path='{serial}' append='on'/><target type='serial' port='0'/></console>
    <memballoon model='none'/>
  </devices>
</domain>"""


class Guest:
    def __init__(self, spec, serial: Path):
        self.spec, self.serial = spec, serial

    def report(self) -> guestlog.GuestReport:
        return guestlog.read_report(self.serial)

    def wait(self, what: str, predicate) -> guestlog.GuestReport:
        """Until predicate(report) holds; fails only when the serial log stops growing for STALL_S."""
        size, last_growth = -1, time.monotonic()
        while True:
            r = self.report()
            if predicate(r):
                return r
            now_size = self.serial.stat().st_size if self.serial.exists() else 0
            if now_size != size:
                size, last_growth = now_size, time.monotonic()
            if time.monotonic() - last_growth > STALL_S:
                pytest.fail(f"guest {VM}: {what} not seen and no serial output for {STALL_S:.0f} s; "
                            f"log tail: {self.serial.read_text(errors='replace')[-600:] if self.serial.exists() else '-'}")
            time.sleep(0.2)

    def wait_alive(self) -> guestlog.GuestReport:
        """Until the current boot has sent two heartbeats (the gap watch is running)."""
        return self.wait("heartbeats", lambda r: r.boots > 0 and sum(1 for b, _ in r.alive if b == r.boots) >= 2)


@pytest.fixture(scope="module")
def guest(libvirt_pair, test_guest):
    """The guest runs on host A of the pair (the last test migrates it to B); the pair's teardown
    removes it from whichever host holds it."""
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    host_a, _ = libvirt_pair
    d = host_a.dir / "guest"
    d.mkdir(parents=True, exist_ok=True)
    serial = d / "serial.log"
    conn = libvirt.open(host_a.uri)
    try:
        conn.defineXML(_domain_xml(test_guest, serial)).create()
    finally:
        conn.close()
    g = Guest(_spec(host_a.uri), serial)
    g.wait_alive()
    return g


def test_freeze_is_a_gap_the_guest_sees_and_resume_is_idempotent(guest):
    before = guest.wait_alive()
    assert base.pause(guest.spec, VM) >= 0
    assert base.state(guest.spec, VM) == "paused"
    assert base.pause(guest.spec, VM) == 0.0  # already paused: nothing to do
    time.sleep(5)  # the disruption itself: a 5 s freeze
    assert base.resume(guest.spec, VM) >= 0
    assert base.state(guest.spec, VM) == "running"
    assert base.resume(guest.spec, VM) == 0.0
    after = guest.wait("the freeze reported", lambda r: len(r.gaps_s) > len(before.gaps_s))
    gap = after.gaps_s[-1]
    # The RTC has 1 s resolution; the guest cannot see less than the time it was frozen.
    assert gap >= 4, after.gaps_s
    assert after.boots == before.boots  # a freeze is not a reboot


def test_reset_reboots_the_guest_and_the_outage_is_measured(guest):
    before = guest.wait_alive()
    base.reset(guest.spec, VM)
    after = guest.wait("the boot after the reset",
                       lambda r: r.boots == before.boots + 1 and sum(1 for b, _ in r.alive if b == r.boots) >= 1)
    outages = guestlog.outages_s(after)
    assert len(outages) == len(guestlog.outages_s(before)) + 1
    assert outages[-1] > 0  # a reset costs at least the boot to userspace


def test_power_off_then_on_restores_the_vm(guest):
    before = guest.wait_alive()
    base.power_off(guest.spec, VM)
    assert base.state(guest.spec, VM) == "shutoff"
    assert base.power_off(guest.spec, VM) == 0.0
    assert base.restore(guest.spec, VM) == "powered on"
    assert base.state(guest.spec, VM) == "running"
    assert base.restore(guest.spec, VM) == "nothing (running)"
    guest.wait("the boot after power-on", lambda r: r.boots == before.boots + 1)


def test_graceful_reboot_stops_the_guest_cleanly_and_it_boots_again(guest):
    before = guest.wait_alive()
    # libvirt presses the ACPI power button; the guest's acpid handler says so and powers off,
    # which libvirt turns into a reset: one clean stop, one more boot, the VM running again.
    assert base.reboot(guest.spec, VM) >= 0
    after = guest.wait("the boot after the graceful reboot",
                       lambda r: r.boots == before.boots + 1 and sum(1 for b, _ in r.alive if b == r.boots) >= 1)
    assert after.shutdowns == [*before.shutdowns, "power_button"]
    assert base.state(guest.spec, VM) == "running"
    assert len(guestlog.outages_s(after)) == len(guestlog.outages_s(before)) + 1


def test_operations_on_a_missing_vm_are_one_line(guest):
    with pytest.raises(PowerError) as err:
        base.power_off(guest.spec, f"{PREFIX}-no-such-vm")
    msg = str(err.value)
    assert msg.startswith(f"kvm power-off of {PREFIX}-no-such-vm: no such VM") and "\n" not in msg


def test_migration_to_a_refusing_host_is_one_line_and_the_vm_keeps_running(guest):
    guest.wait_alive()
    dest = "qemu+tcp://127.0.0.1:1/system"  # loopback, closed port: refused at once
    with pytest.raises(PowerError) as err:
        base.migrate(guest.spec, VM, dest)  # from host A's namespace: its own loopback
    msg = str(err.value)
    assert msg.startswith(f"kvm live migration to {dest} of {VM}: ") and "\n" not in msg
    assert "127.0.0.1" in msg
    assert base.state(guest.spec, VM) == "running"


def test_live_migration_between_two_libvirtds_keeps_the_guest_running(guest, libvirt_pair):
    """Peer-to-peer live migration A -> B: same boot, heartbeats continue on B, downtime reported."""
    import libvirt

    host_a, host_b = libvirt_pair
    before = guest.wait_alive()
    moved = base.migrate(guest.spec, VM, host_b.peer_uri, dest_stats_uri=host_b.uri)
    assert moved.dest == host_b.peer_uri and moved.duration_s > 0
    assert moved.downtime_ms is not None and moved.downtime_ms > 0  # QEMU's own measure of the stop-and-copy
    on_b = guest.spec.model_copy(update={"kvm": guest.spec.kvm.model_copy(update={"uri": host_b.uri})})
    assert base.state(on_b, VM) == "running"
    conn = libvirt.open(host_a.uri)
    try:
        assert VM not in [d.name() for d in conn.listAllDomains(0)]  # undefined on the source
    finally:
        conn.close()
    after = guest.wait("heartbeats from host B", lambda r: len(r.alive) >= len(before.alive) + 3)
    assert after.boots == before.boots  # the same boot carried on: nothing restarted
    rtc = [t for _, t in after.alive[len(before.alive) - 1:]]  # the heartbeats around the migration
    print(f"migration: {moved.duration_s:.2f} s, QEMU downtime {moved.downtime_ms:.0f} ms, "
          f"largest heartbeat gap {max(b - a for a, b in zip(rtc, rtc[1:])):.0f} s (RTC, 1 s resolution)")


def test_migration_parameters_and_flags():
    import libvirt

    params = kvm_migrate.migration_params(libvirt, data_uri="tcp://198.18.0.2", bandwidth_mib_s=100)
    assert params == {libvirt.VIR_MIGRATE_PARAM_URI: "tcp://198.18.0.2", libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 100}
    assert kvm_migrate.migration_params(libvirt) == {}
    flags = kvm_migrate.migration_flags(libvirt)
    for f in ("LIVE", "PEER2PEER", "PERSIST_DEST", "UNDEFINE_SOURCE"):
        assert flags & getattr(libvirt, f"VIR_MIGRATE_{f}")
    assert not flags & libvirt.VIR_MIGRATE_OFFLINE
