"""vSphere audit rules against govmomi's simulator: VMs reconfigured into bad and good states through pyvmomi."""

from __future__ import annotations

import pytest
from pyVmomi import vim

from provision.audit import collect_vsphere, vsphere
from provision.audit.rules import RULES
from tests.support.vcsim import start_vcsim, wait_task

pytestmark = pytest.mark.needs_vcsim

# Spelled out, not read from the table: deleting a rule must fail a test.
VSPHERE_RULES = ["vsphere.hw-version", "vsphere.disk-uuid", "vsphere.cpu-hot-add", "vsphere.snapshots",
                 "vsphere.nic-vmxnet3", "vsphere.scsi-paravirtual", "vsphere.thin-disk-master",
                 "vsphere.tools-not-running", "vsphere.latency-reservations"]
BAD, GOOD = "DC0_H0_VM0", "DC0_H0_VM1"


def _vm(si, name: str) -> vim.VirtualMachine:
    return next(vm for vm, props in collect_vsphere.retrieve(si) if props.get("name") == name)


def _device(vm: vim.VirtualMachine, kind: type):
    return next(d for d in vm.config.hardware.device if isinstance(d, kind))


def make_bad(si, vm: vim.VirtualMachine) -> None:
    """Every vSphere rule's bad value on one powered-on VM (the simulator's VMs start at vmx-13, e1000, thin)."""
    lsi = vim.vm.device.VirtualLsiLogicController(key=-100, busNumber=1, sharedBus="noSharing")
    spec = vim.vm.ConfigSpec(
        cpuHotAddEnabled=True,
        latencySensitivity=vim.LatencySensitivity(level="high"),
        deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=lsi)],
    )
    wait_task(vm.ReconfigVM_Task(spec))
    wait_task(vm.CreateSnapshot_Task(name="before-upgrade", description="audit test", memory=False, quiesce=False))


def make_good(si, vm: vim.VirtualMachine) -> None:
    """The good value of every rule: vmx-15, disk.EnableUUID, vmxnet3, pvscsi, thick disk, full reservations."""
    wait_task(vm.PowerOffVM_Task())
    e1000 = _device(vm, vim.vm.device.VirtualEthernetCard)
    vmxnet3 = vim.vm.device.VirtualVmxnet3(key=-200, backing=e1000.backing, addressType="generated")
    disk = _device(vm, vim.vm.device.VirtualDisk)
    disk.backing.thinProvisioned = False
    disk.backing.eagerlyScrub = True
    spec = vim.vm.ConfigSpec(
        version="vmx-15",
        extraConfig=[vim.option.OptionValue(key="disk.EnableUUID", value="TRUE")],
        latencySensitivity=vim.LatencySensitivity(level="high"),
        memoryReservationLockedToMax=True,
        cpuAllocation=vim.ResourceAllocationInfo(reservation=2000),
        deviceChange=[
            vim.vm.device.VirtualDeviceSpec(operation="remove", device=e1000),
            vim.vm.device.VirtualDeviceSpec(operation="add", device=vmxnet3),
            vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk),
        ],
    )
    wait_task(vm.ReconfigVM_Task(spec))


@pytest.fixture(scope="module")
def sim(vcsim_binary, vcsim_pki, tmp_path_factory):
    """A simulator of our own: the tests reconfigure its VMs, which the shared `vcsim` must not see."""
    s = start_vcsim(vcsim_binary, vcsim_pki, tmp_path_factory.mktemp("vcsim-audit"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def audited(sim):
    si = sim.connect()
    make_bad(si, _vm(si, BAD))
    make_good(si, _vm(si, GOOD))
    inv = collect_vsphere.collect(si, "audit", [], names=[BAD, GOOD], roles={BAD: "master", GOOD: "master"})
    findings = vsphere.audit_vsphere(inv.vms)
    return inv, {name: {f.rule for f in findings if f.vm == name} for name in (BAD, GOOD)}, findings


@pytest.mark.parametrize("rule", VSPHERE_RULES)
def test_rule_fires_on_bad_vm_and_not_on_good(audited, rule):
    _, fired, findings = audited
    assert rule in fired[BAD], f"{rule} did not fire on the bad VM; findings: {[f.line() for f in findings]}"
    assert rule not in fired[GOOD], f"{rule} fired on the good VM: {[f.line() for f in findings if f.vm == GOOD]}"


def test_every_vsphere_rule_has_a_function():
    assert set(vsphere.RULE_FUNCTIONS) == set(VSPHERE_RULES) == {r for r, rule in RULES.items()
                                                                 if r.startswith("vsphere.") and rule.kind == "performance"}


def test_snapshot_reads_what_pyvmomi_set(audited):
    inv, _, findings = audited
    bad = next(v for v in inv.vms if v.name == BAD)
    good = next(v for v in inv.vms if v.name == GOOD)
    assert bad.snapshots == ("before-upgrade",)
    assert ("ethernet-0", "VirtualE1000") in bad.nics
    assert any(kind == "VirtualLsiLogicController" for _, kind in bad.scsi_controllers)
    assert good.hw_version == "vmx-15" and good.power_state == "poweredOff"
    assert [kind for _, kind in good.nics] == ["VirtualVmxnet3"]
    assert good.disks and good.disks[0].thin is False
    info = {i.name: i for i in inv.info}
    assert info[GOOD].provisioning == "thick" and info[BAD].provisioning == "thin"
    hot_add = next(f for f in findings if f.rule == "vsphere.cpu-hot-add")
    assert hot_add.severity == "medium" and hot_add.role == "master"


def test_thin_disk_only_flagged_on_masters(audited):
    inv, _, _ = audited
    bad = next(v for v in inv.vms if v.name == BAD)
    worker = vsphere.VsphereVm(**{**bad.__dict__, "role": "worker"})
    assert vsphere.check_thin_disk_master(worker) == []
    assert vsphere.check_thin_disk_master(bad)


def test_latency_reservation_needs_both_cpu_and_memory():
    base = vsphere.VsphereVm(name="vm", role="worker", hw_version="vmx-19", vcpu=4, memory_mib=16384,
                             power_state="poweredOn", latency_sensitivity="high", memory_reservation_mib=16384)
    assert "no CPU reservation" in vsphere.check_latency_reservations(base)[0].observed
    ok = vsphere.VsphereVm(**{**base.__dict__, "cpu_reservation_mhz": 8000})
    assert vsphere.check_latency_reservations(ok) == []
    normal = vsphere.VsphereVm(**{**base.__dict__, "latency_sensitivity": "normal"})
    assert vsphere.check_latency_reservations(normal) == []


@pytest.mark.parametrize("value,fires", [("TRUE", False), ("true", False), ("FALSE", True), (None, True)])
def test_disk_enable_uuid_values(value, fires):
    extra = {} if value is None else {"disk.EnableUUID": value}
    vm = vsphere.VsphereVm(name="vm", role="worker", hw_version="vmx-19", vcpu=1, memory_mib=1, power_state="poweredOn",
                           extra_config=extra)
    assert bool(vsphere.check_disk_uuid(vm)) is fires


@pytest.mark.parametrize("version,fires", [("vmx-13", True), ("vmx-14", True), ("vmx-15", False), ("vmx-21", False), ("", True)])
def test_hardware_version_threshold(version, fires):
    vm = vsphere.VsphereVm(name="vm", role="worker", hw_version=version, vcpu=1, memory_mib=1, power_state="poweredOn")
    assert bool(vsphere.check_hw_version(vm)) is fires
