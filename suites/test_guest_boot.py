"""What the provisioning path delivered, as seen from inside each test-guest VM.

Applies when --spec is a test-guest spec (`okd.guest: testguest`): `okdbench demo`, or a KVM host
checked before OKD goes on it. Each VM boots Debian's kernel + okdbench's busybox initramfs
(provision/kvm/testguest.py), which reports on its serial console; see provision/kvm/guestlog.py.
Criteria: guest.boot, guest.ignition, guest.nic, guest.dhcp, guest.dns. Samples: per-VM
boot-to-userspace time (guest.boot.userspace, the kernel's own clock when /init starts).
"""

from __future__ import annotations

import hashlib

import pytest

from provision.kvm import guestlog
from suites.guests import load_guests


@pytest.fixture(scope="module")
def guests(request, okdbench_config, run_writer) -> list[guestlog.Guest]:
    return load_guests(request, okdbench_config, run_writer)


@pytest.mark.criterion("guest.boot")
def test_every_guest_boots_to_userspace_and_finishes(guests, record):
    for g in guests:
        if g.report.boot_uptime_s is not None:
            record("guest.boot.userspace", g.report.boot_uptime_s, "s", node=g.machine.name, role=g.machine.role)
    # A guest the host stopped waiting for says which step it went silent after (guestlog.Pace).
    silent = [g.silent for g in guests if g.silent]
    assert not silent, "; ".join(silent) + "; see serial/<vm>.log in the run folder"
    missing = [g.vm.name for g in guests if g.report.boot_uptime_s is None]
    assert not missing, f"no boot line from {', '.join(missing)}; see their serial logs"
    assert all(g.report.done for g in guests)


@pytest.mark.criterion("guest.ignition")
def test_ignition_reaches_each_guest_through_fw_cfg(guests, okdbench_config, infra):
    from provision.kvm.render import ignition_path

    if okdbench_config.platform != "kvm":
        pytest.skip("fw_cfg ignition delivery is KVM's; vSphere uses guestinfo")
    bad = []
    for g in guests:
        expected = ignition_path(infra.workdir, okdbench_config.spec, g.machine).read_bytes()
        got = g.report.ignition
        want = {"sha256": hashlib.sha256(expected).hexdigest(), "bytes": str(len(expected))}
        if {k: got.get(k) for k in want} != want:
            bad.append(f"{g.machine.name}: read {got.get('sha256', got.get('error', 'nothing'))[:12]}/{got.get('bytes')} bytes,"
                       f" rendered {want['sha256'][:12]}/{want['bytes']} bytes")
    assert not bad, "ignition differs: " + "; ".join(bad)


@pytest.mark.criterion("guest.nic")
def test_each_guest_has_its_derived_mac_and_the_same_nic_name(guests):
    bad = []
    for g in guests:
        nics = g.report.nics
        if len(nics) != 1:
            bad.append(f"{g.machine.name}: {len(nics)} NICs, expected 1")
        elif nics[0].get("mac") != g.machine.mac:
            bad.append(f"{g.machine.name}: MAC {nics[0].get('mac')}, expected {g.machine.mac}")
    assert not bad, "; ".join(bad)
    names = {g.report.nics[0]["name"] for g in guests}
    assert len(names) == 1, f"NIC names differ between guests: {sorted(names)}"


@pytest.mark.criterion("guest.dhcp")
def test_each_guest_gets_its_reserved_address(guests):
    bad = []
    for g in guests:
        lease = g.report.dhcp
        if lease.get("ip") != str(g.machine.ip):
            bad.append(f"{g.machine.name}: got {lease.get('ip') or lease.get('error', 'no lease')}, reserved {g.machine.ip}")
        elif lease.get("hostname") not in (None, "", g.machine.name, g.machine.hostname):
            bad.append(f"{g.machine.name}: DHCP hostname {lease['hostname']!r}")
    assert not bad, "; ".join(bad)


@pytest.mark.criterion("guest.dns")
def test_each_guest_resolves_the_api_name(guests, okdbench_config):
    from provision.kvm.render import net_plan

    if okdbench_config.platform != "kvm":
        pytest.skip("the api record is served by libvirt's dnsmasq on KVM only")
    spec = okdbench_config.spec
    want = str(net_plan(spec).api_ip)
    bad = [f"{g.machine.name}: {g.report.dns.get('api') or g.report.dns.get('error', 'no answer')}"
           for g in guests if g.report.dns.get("api") != want]
    assert not bad, f"api.{spec.cluster_domain} should resolve to {want}: " + "; ".join(bad)
