"""vSphere audit rules: pure functions over a plain snapshot of a VM's configuration.

collect_vsphere.py fills VsphereVm from pyvmomi objects; nothing here talks to vCenter, so the
rules are tested on hand-made snapshots and on snapshots of real simulator VMs alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from provision.audit.rules import Finding

MIN_HW_VERSION = 15
CONTROL_PLANE_ROLES = {"master"}


@dataclass(frozen=True)
class VsphereDisk:
    label: str
    capacity_gib: float
    thin: bool | None  # None: backing does not say (RDM, vVol…)
    controller: str  # controller type name, e.g. ParaVirtualSCSIController


@dataclass(frozen=True)
class VsphereVm:
    name: str
    role: str
    hw_version: str  # config.version, e.g. 'vmx-15'
    vcpu: int
    memory_mib: int
    power_state: str  # poweredOn | poweredOff | suspended
    extra_config: dict[str, str] = field(default_factory=dict)
    cpu_hot_add: bool = False
    snapshots: tuple[str, ...] = ()  # names of every snapshot in the tree
    nics: tuple[tuple[str, str], ...] = ()  # (label, device type name)
    scsi_controllers: tuple[tuple[str, str], ...] = ()  # (label, controller type name)
    disks: tuple[VsphereDisk, ...] = ()
    tools_running_status: str | None = None
    latency_sensitivity: str | None = None
    cpu_reservation_mhz: int = 0
    memory_reservation_mib: int = 0
    memory_locked_to_max: bool = False
    macs: tuple[str, ...] = ()
    uuid: str = ""  # BIOS UUID: what a node's providerID (vsphere://<uuid>) names
    node: str = ""
    firmware: str = ""  # config.firmware: bios | efi
    secure_boot: bool = False  # config.bootOptions.efiSecureBootEnabled
    vtpm: bool = False  # a VirtualTPM device
    encrypted: bool = False  # config.keyId set (VM encryption)


def hw_version_number(version: str) -> int | None:
    m = re.fullmatch(r"vmx-(\d+)", version or "")
    return int(m.group(1)) if m else None


def _f(vm: VsphereVm, rule: str, observed: str, subject: str = "") -> Finding:
    return Finding(rule, vm.name, observed, vm.role, vm.node, subject)


def check_hw_version(vm: VsphereVm) -> list[Finding]:
    n = hw_version_number(vm.hw_version)
    if n is None or n < MIN_HW_VERSION:
        return [_f(vm, "vsphere.hw-version", f"hardware version {vm.hw_version or 'unknown'} (need vmx-{MIN_HW_VERSION}+)")]
    return []


def check_disk_uuid(vm: VsphereVm) -> list[Finding]:
    # vCenter keys are case-insensitive in practice (disk.EnableUUID / disk.enableUUID).
    value = next((v for k, v in vm.extra_config.items() if k.lower() == "disk.enableuuid"), None)
    if str(value).strip().upper() != "TRUE":
        return [_f(vm, "vsphere.disk-uuid", f"disk.EnableUUID={value if value is not None else 'missing'}")]
    return []


def check_cpu_hot_add(vm: VsphereVm) -> list[Finding]:
    return [_f(vm, "vsphere.cpu-hot-add", "cpuHotAddEnabled=true (vNUMA off)")] if vm.cpu_hot_add else []


def check_snapshots(vm: VsphereVm) -> list[Finding]:
    if not vm.snapshots:
        return []
    shown = ", ".join(vm.snapshots[:3]) + (" …" if len(vm.snapshots) > 3 else "")
    return [_f(vm, "vsphere.snapshots", f"{len(vm.snapshots)} snapshot(s): {shown}")]


def check_nic_vmxnet3(vm: VsphereVm) -> list[Finding]:
    return [_f(vm, "vsphere.nic-vmxnet3", kind, label) for label, kind in vm.nics if kind != "VirtualVmxnet3"]


def check_scsi_paravirtual(vm: VsphereVm) -> list[Finding]:
    return [_f(vm, "vsphere.scsi-paravirtual", kind, label)
            for label, kind in vm.scsi_controllers if kind != "ParaVirtualSCSIController"]


def check_thin_disk_master(vm: VsphereVm) -> list[Finding]:
    if vm.role not in CONTROL_PLANE_ROLES:
        return []
    return [_f(vm, "vsphere.thin-disk-master", f"thin-provisioned {d.capacity_gib:.0f} GiB", d.label)
            for d in vm.disks if d.thin]


def check_tools_running(vm: VsphereVm) -> list[Finding]:
    if vm.power_state != "poweredOn" or vm.tools_running_status == "guestToolsRunning":
        return []
    return [_f(vm, "vsphere.tools-not-running", f"toolsRunningStatus={vm.tools_running_status or 'unknown'}")]


def check_latency_reservations(vm: VsphereVm) -> list[Finding]:
    if vm.latency_sensitivity != "high":
        return []
    missing = []
    if not (vm.memory_locked_to_max or vm.memory_reservation_mib >= vm.memory_mib):
        missing.append(f"memory reservation {vm.memory_reservation_mib}/{vm.memory_mib} MiB")
    if vm.cpu_reservation_mhz <= 0:
        missing.append("no CPU reservation")
    if not missing:
        return []
    return [_f(vm, "vsphere.latency-reservations", "latency sensitivity high with " + " and ".join(missing))]


RULE_FUNCTIONS: dict[str, Callable[[VsphereVm], list[Finding]]] = {
    "vsphere.hw-version": check_hw_version,
    "vsphere.disk-uuid": check_disk_uuid,
    "vsphere.cpu-hot-add": check_cpu_hot_add,
    "vsphere.snapshots": check_snapshots,
    "vsphere.nic-vmxnet3": check_nic_vmxnet3,
    "vsphere.scsi-paravirtual": check_scsi_paravirtual,
    "vsphere.thin-disk-master": check_thin_disk_master,
    "vsphere.tools-not-running": check_tools_running,
    "vsphere.latency-reservations": check_latency_reservations,
}


def audit_vsphere(vms: list[VsphereVm]) -> list[Finding]:
    return [f for vm in vms for check in RULE_FUNCTIONS.values() for f in check(vm)]


def disk_summary(vm: VsphereVm) -> str:
    if not vm.disks:
        return "none"
    d = vm.disks[0]
    kind = "thin" if d.thin else ("thick" if d.thin is False else "?")
    ctrl = {"ParaVirtualSCSIController": "pvscsi", "VirtualLsiLogicController": "lsilogic",
            "VirtualLsiLogicSASController": "lsisas", "VirtualBusLogicController": "buslogic",
            "VirtualNVMEController": "nvme"}.get(d.controller, d.controller)
    return f"{ctrl} {kind}"


def provisioning(vm: VsphereVm) -> str:
    if not vm.disks or vm.disks[0].thin is None:
        return "unknown"
    return "thin" if vm.disks[0].thin else "thick"
