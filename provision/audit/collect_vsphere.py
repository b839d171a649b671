"""Gather VsphereVm snapshots through pyvmomi: a plain copy of what the vSphere rules read."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyVmomi import vim

from provision.audit import vsphere
from provision.audit.inventory import VmInfo, match_machine, role_from_name
from provision.spec import Machine
from provision.vsphere.inventory import vm_properties

log = logging.getLogger("okdbench.audit.vsphere")


@dataclass
class VsphereInventory:
    vms: list[vsphere.VsphereVm]
    info: list[VmInfo]
    facts: dict


def _type_name(obj: object) -> str:
    # pyVmomi class names look like 'vim.vm.device.VirtualVmxnet3'.
    return type(obj).__name__.rsplit(".", 1)[-1]


def _snapshot_names(tree: list) -> list[str]:
    out = []
    for s in tree or []:
        out.append(s.name)
        out.extend(_snapshot_names(s.childSnapshotList))
    return out


# One PropertyCollector round trip reads these for every VM (attribute access would be a call per
# property per VM, and govmomi's simulator cannot Fetch an unset property such as `snapshot`).
PROPERTIES = ["name", "config", "snapshot", "runtime.powerState", "guest.toolsRunningStatus"]


def retrieve(si: vim.ServiceInstance, root: vim.ManagedEntity | None = None) -> list[tuple[vim.VirtualMachine, dict]]:
    """(VM, {property path: value}) for every VM below root; unset properties are absent."""
    return vm_properties(si, root or si.content.rootFolder, PROPERTIES)


def snapshot(props: dict, role: str, node: str = "") -> vsphere.VsphereVm:
    """A VsphereVm from the properties retrieve() read; nothing here talks to vCenter."""
    cfg = props.get("config")
    devices = list(cfg.hardware.device) if cfg else []
    by_key = {d.key: d for d in devices}
    nics = [d for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    disks = []
    for d in devices:
        if not isinstance(d, vim.vm.device.VirtualDisk):
            continue
        thin = getattr(d.backing, "thinProvisioned", None)
        ctrl = by_key.get(d.controllerKey)
        disks.append(vsphere.VsphereDisk(label=d.deviceInfo.label, capacity_gib=(d.capacityInKB or 0) / 2**20,
                                         thin=None if thin is None else bool(thin),
                                         controller=_type_name(ctrl) if ctrl is not None else "?"))
    snap = props.get("snapshot")
    latency = cfg.latencySensitivity if cfg else None
    return vsphere.VsphereVm(
        name=props.get("name", "?"),
        role=role,
        node=node,
        hw_version=cfg.version if cfg else "",
        vcpu=cfg.hardware.numCPU if cfg else 0,
        memory_mib=cfg.hardware.memoryMB if cfg else 0,
        power_state=str(props.get("runtime.powerState", "unknown")),
        extra_config={o.key: str(o.value) for o in (cfg.extraConfig if cfg else [])},
        cpu_hot_add=bool(cfg.cpuHotAddEnabled) if cfg else False,
        snapshots=tuple(_snapshot_names(snap.rootSnapshotList)) if snap else (),
        nics=tuple((d.deviceInfo.label, _type_name(d)) for d in nics),
        scsi_controllers=tuple((d.deviceInfo.label, _type_name(d)) for d in devices
                               if isinstance(d, vim.vm.device.VirtualSCSIController)),
        disks=tuple(disks),
        tools_running_status=props.get("guest.toolsRunningStatus"),
        latency_sensitivity=str(latency.level) if latency is not None else None,
        cpu_reservation_mhz=int(cfg.cpuAllocation.reservation or 0) if cfg and cfg.cpuAllocation else 0,
        memory_reservation_mib=int(cfg.memoryAllocation.reservation or 0) if cfg and cfg.memoryAllocation else 0,
        memory_locked_to_max=bool(cfg.memoryReservationLockedToMax) if cfg else False,
        macs=tuple(d.macAddress for d in nics if d.macAddress),
        uuid=cfg.uuid if cfg else "",
        firmware=str(cfg.firmware or "") if cfg else "",
        secure_boot=bool(cfg.bootOptions and cfg.bootOptions.efiSecureBootEnabled) if cfg else False,
        vtpm=any(isinstance(d, vim.vm.device.VirtualTPM) for d in devices),
        encrypted=bool(cfg.keyId) if cfg else False,
    )


def info(vm: vsphere.VsphereVm, machine: Machine | None) -> VmInfo:
    return VmInfo(name=vm.name, machine=machine.name if machine else "", role=vm.role, vcpu=vm.vcpu,
                  memory_mib=vm.memory_mib, disk_gib=round(vm.disks[0].capacity_gib) if vm.disks else None,
                  disk=vsphere.disk_summary(vm), provisioning=vsphere.provisioning(vm), node=vm.node, uuid=vm.uuid,
                  ips=(str(machine.ip),) if machine else ())


def collect(si: vim.ServiceInstance, cluster: str, machines: list[Machine], names: list[str] | None = None,
            roles: dict[str, str] | None = None, root: vim.ManagedEntity | None = None) -> VsphereInventory:
    """The cluster's VMs below root: the named ones, or every VM matching a spec machine by MAC or name."""
    roles = roles or {}
    vms, infos = [], []
    for _, props in retrieve(si, root):
        cfg = props.get("config")
        name = props.get("name", "?")
        if cfg is None or cfg.template:
            continue
        macs = [d.macAddress for d in cfg.hardware.device
                if isinstance(d, vim.vm.device.VirtualEthernetCard) and d.macAddress]
        m = match_machine(machines, cluster, name, macs)
        if (names is not None and name not in names) or (names is None and m is None):
            continue
        snap = snapshot(props, roles.get(name) or (m.role if m else role_from_name(name)))
        vms.append(snap)
        infos.append(info(snap, m))
    return VsphereInventory(vms=vms, info=infos, facts=facts(si))


def facts(si: vim.ServiceInstance) -> dict:
    about = si.content.about
    return {"vcenter_version": about.version, "vcenter_build": about.build, "api_version": about.apiVersion}
