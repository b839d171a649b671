"""Creating, inspecting and deleting this cluster's VMs in vCenter (pyVmomi).

Create is all-or-nothing: every lookup and check runs before the first object is created, and any
failure after that removes what this call created (VMs, and the folder if it made it) before the
error is raised. Hardware the template has that OKD on vSphere should not run on (non-pvscsi
controllers, non-vmxnet3 NICs, a disk larger than asked) is reported as a finding, never changed
behind the user's back.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field

from pyVmomi import vim

from plumbing.errors import UserError
from provision.spec import ClusterSpec
from provision.vsphere.ha import ha_config
from provision.vsphere.inventory import Inventory, entity_path, find, paths, resolve, vm_properties, vms_named
from provision.vsphere.connect import connection_guard
from provision.vsphere.plan import CLUSTER_KEY, NODE_KEY, VmPlan, extra_config, ownership_marks, vm_plans
from provision.vsphere.tasks import start_tasks, wait_tasks

log = logging.getLogger("okdbench.vsphere")

CLONE_TIMEOUT_S = 1800.0
RECONFIGURE_TIMEOUT_S = 300.0
POWER_TIMEOUT_S = 300.0
DESTROY_TIMEOUT_S = 600.0


@dataclass
class Created:
    vms: dict[str, vim.VirtualMachine] = field(default_factory=dict)  # name -> VM
    findings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    folder: str = ""


# --------------------------------------------------------------------------- template checks


def template_findings(inv: Inventory, plans: list[VmPlan]) -> list[str]:
    """What is wrong with the template for OKD, one line each. Raises when it cannot be used at all."""
    hw = inv.template.config.hardware.device
    where = inv.paths.template
    nics = [d for d in hw if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    disks = [d for d in hw if isinstance(d, vim.vm.device.VirtualDisk)]
    if not nics:
        raise UserError(f"vsphere.template: {where} has no network adapter; add one vmxnet3 NIC to the template")
    if not disks:
        raise UserError(f"vsphere.template: {where} has no disk; use an FCOS template with its root disk")
    out = []
    for ctl in hw:
        if isinstance(ctl, vim.vm.device.VirtualSCSIController) and not isinstance(ctl, vim.vm.device.ParaVirtualSCSIController):
            out.append(f"vsphere.template: {where} SCSI controller '{ctl.deviceInfo.label}' is "
                       f"{type(ctl).__name__.rsplit('.', 1)[-1]}, not ParaVirtual (pvscsi); clones keep it — "
                       "convert the template for comparable disk performance")
    for nic in nics:
        if not isinstance(nic, vim.vm.device.VirtualVmxnet3):
            out.append(f"vsphere.template: {where} NIC '{nic.deviceInfo.label}' is "
                       f"{type(nic).__name__.rsplit('.', 1)[-1]}, not vmxnet3; clones keep it — convert the template "
                       "for comparable network performance")
    if len(nics) > 1:
        out.append(f"vsphere.template: {where} has {len(nics)} NICs; okdbench configures only the first")
    need = sum(max(p.disk_gib, disks[0].capacityInKB / 2**20) for p in plans) * 2**30
    free = inv.datastore.summary.freeSpace
    if free is not None and free < need:
        out.append(f"vsphere.datastore: {inv.paths.datastore} has {free / 2**30:.0f} GiB free, the cluster's disks "
                   f"total {need / 2**30:.0f} GiB; thin disks may fit for now but will fill it")
    have_gib = disks[0].capacityInKB / 2**20
    for plan in plans:
        if have_gib > plan.disk_gib:
            out.append(f"nodes[{plan.machine.role}].disk: template disk is {have_gib:.0f} GiB, larger than the "
                       f"{plan.disk_gib} GiB asked; disks cannot shrink, clones keep {have_gib:.0f} GiB")
            break
    return out


# --------------------------------------------------------------------------- specs


def _nic_backing(net: vim.Network) -> vim.vm.device.VirtualDevice.BackingInfo:
    if isinstance(net, vim.dvs.DistributedVirtualPortgroup):
        return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(
            port=vim.dvs.PortConnection(portgroupKey=net.key, switchUuid=net.config.distributedVirtualSwitch.uuid))
    if isinstance(net, vim.OpaqueNetwork):
        return vim.vm.device.VirtualEthernetCard.OpaqueNetworkBackingInfo(
            opaqueNetworkId=net.summary.opaqueNetworkId, opaqueNetworkType=net.summary.opaqueNetworkType)
    return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=net.name, network=net)


def config_spec(vm: vim.VirtualMachine, plan: VmPlan, inv: Inventory, extra: dict[str, str]) -> vim.vm.ConfigSpec:
    """vCPU, memory, disk size, NIC (static MAC, network) and extraConfig, applied after clone.

    After, not in the CloneSpec: govmomi's simulator ignores CPU/memory there, and a reconfigure
    is what every vCenter accepts. Only the ownership marks go in the CloneSpec (clone_spec).
    """
    m = plan.machine
    changes = []
    devices = vm.config.hardware.device
    nic = next(d for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard))
    nic.macAddress = m.mac
    nic.addressType = "manual"
    nic.backing = _nic_backing(inv.network)
    nic.connectable = vim.vm.device.VirtualDevice.ConnectInfo(startConnected=True, allowGuestControl=True,
                                                              connected=False)
    changes.append(vim.vm.device.VirtualDeviceSpec(operation="edit", device=nic))
    disk = next(d for d in devices if isinstance(d, vim.vm.device.VirtualDisk))
    want_kb = plan.disk_gib * 2**20
    if disk.capacityInKB < want_kb:
        disk.capacityInKB = want_kb
        disk.capacityInBytes = want_kb * 1024
        changes.append(vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk))
    return vim.vm.ConfigSpec(
        numCPUs=m.vcpu, memoryMB=plan.memory_mib, deviceChange=changes,
        extraConfig=_options(extra))


def _options(values: dict[str, str]) -> list[vim.option.OptionValue]:
    return [vim.option.OptionValue(key=k, value=v) for k, v in values.items()]


def clone_spec(inv: Inventory, spec: ClusterSpec, plan: VmPlan) -> vim.vm.CloneSpec:
    """The clone request, carrying the ownership marks: a clone that exists is already destroy's to
    remove, even when vCenter goes away before reconfigure (govmomi's simulator and vCenter both
    apply CloneSpec.config.extraConfig)."""
    return vim.vm.CloneSpec(
        location=vim.vm.RelocateSpec(pool=inv.resource_pool, datastore=inv.datastore), powerOn=False, template=False,
        config=vim.vm.ConfigSpec(extraConfig=_options(ownership_marks(spec, plan.machine))))


def _reconfigure_extra(spec: ClusterSpec, plan: VmPlan, ignition: bytes | None) -> dict[str, str]:
    # The marks are already set by the clone; sending them again would duplicate them in the simulator.
    marks = ownership_marks(spec, plan.machine)
    return {k: v for k, v in extra_config(spec, plan.machine, ignition).items() if k not in marks}


def _reconfigure(vm: vim.VirtualMachine, plan: VmPlan, inv: Inventory, extra: dict[str, str]) -> vim.Task:
    # One callable for start_tasks: config_spec reads the clone's devices from vCenter, and that read
    # belongs under the same connection guard as the call.
    return vm.ReconfigVM_Task(spec=config_spec(vm, plan, inv, extra))


# --------------------------------------------------------------------------- create


def _existing(si: vim.ServiceInstance, inv: Inventory, plans: list[VmPlan]) -> None:
    taken = vms_named(si, inv.datacenter.vmFolder, {p.name for p in plans})
    if taken:
        name, vm = sorted(taken.items())[0]
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise UserError(f"vsphere: VM name {name} is already used by {entity_path(si, vm)}{more}; destroy that cluster "
                        "(okdbench destroy --spec ...) or change the cluster name")


def _ensure_folder(si: vim.ServiceInstance, inv: Inventory) -> tuple[vim.Folder, bool]:
    if inv.folder is not None:
        return inv.folder, False
    parent_path, name = inv.paths.folder.rsplit("/", 1)
    parent = find(si, parent_path)
    try:
        return parent.CreateFolder(name), True
    except vim.fault.DuplicateName:  # created concurrently by someone else: use it, do not own it
        return find(si, inv.paths.folder), False
    except vim.fault.VimFault as exc:
        raise UserError(f"vsphere.folder: cannot create {inv.paths.folder} ({getattr(exc, 'msg', type(exc).__name__)})") from None


def create_vms(si: vim.ServiceInstance, spec: ClusterSpec, ignition: dict[str, bytes | None]) -> Created:
    """Clone, configure and power on every node VM. ignition: role -> bytes for guestinfo (None: no ignition)."""
    plans = vm_plans(spec)
    inv = resolve(si, spec)
    _existing(si, inv, plans)
    out = Created(findings=template_findings(inv, plans), folder=inv.paths.folder)
    for line in out.findings:
        log.warning("finding: %s", line)
    for plan in plans:
        if plan.machine.role not in ignition:
            raise UserError(f"ignition: no {plan.machine.role}.ign was generated; run openshift-install "
                            "create ignition-configs (provision does this) before creating VMs")

    folder, made_folder = _ensure_folder(si, inv)
    try:
        t0 = time.monotonic()
        log.info("vsphere clone: %d VMs from %s into %s", len(plans), inv.paths.template, inv.paths.folder)
        try:
            tasks = start_tasks(si, "clone", {p.name: functools.partial(
                inv.template.CloneVM_Task, folder=folder, name=p.name, spec=clone_spec(inv, spec, p)) for p in plans})
            out.vms = dict(wait_tasks(tasks, "clone", timeout=CLONE_TIMEOUT_S))
        except BaseException:
            # Remember every clone that exists so the rollback finds it (if vCenter is reachable at all).
            try:
                out.vms = vms_named(si, folder, {p.name for p in plans})
            except Exception as exc:
                log.warning("vsphere: cannot list the clones to roll back (%s)", type(exc).__name__)
            raise
        out.timings["vsphere.clone"] = time.monotonic() - t0

        t0 = time.monotonic()
        tasks = start_tasks(si, "reconfigure", {p.name: functools.partial(
            _reconfigure, out.vms[p.name], p, inv, _reconfigure_extra(spec, p, ignition[p.machine.role]))
            for p in plans})
        wait_tasks(tasks, "reconfigure", timeout=RECONFIGURE_TIMEOUT_S)
        out.timings["vsphere.reconfigure"] = time.monotonic() - t0

        t0 = time.monotonic()
        tasks = start_tasks(si, "power on", {p.name: out.vms[p.name].PowerOnVM_Task for p in plans})
        wait_tasks(tasks, "power on", timeout=POWER_TIMEOUT_S)
        out.timings["vsphere.power_on"] = time.monotonic() - t0
    except BaseException as exc:  # including KeyboardInterrupt: leave nothing half-created
        log.warning("vsphere: %s; rolling back %d VM(s)%s", type(exc).__name__, len(out.vms),
                    f" and folder {inv.paths.folder}" if made_folder else "")
        _rollback(si, folder if made_folder else None, out.vms)
        raise
    return out


def _rollback(si: vim.ServiceInstance, folder: vim.Folder | None, vms: dict[str, vim.VirtualMachine]) -> None:
    # Best effort, and never masking the error being rolled back from; what it cannot remove carries
    # the ownership marks, so a later destroy does.
    try:
        delete_vms(vms)
        if folder is not None and not folder.childEntity:
            wait_tasks({"folder": folder.Destroy_Task()}, "rollback folder", timeout=DESTROY_TIMEOUT_S)
    except Exception as exc:
        log.warning("vsphere rollback incomplete (%s); okdbench destroy removes what is left", exc)


# --------------------------------------------------------------------------- delete


def delete_vms(vms: dict[str, vim.VirtualMachine]) -> list[str]:
    """Power off (hard: these are disposable nodes) and delete. Returns the deleted VM names."""
    if not vms:
        return []
    via = next(iter(vms.values()))
    with connection_guard(via, "reading the power state of VMs to delete"):
        on = {n: vm for n, vm in vms.items() if vm.runtime.powerState != vim.VirtualMachine.PowerState.poweredOff}
    if on:
        wait_tasks(start_tasks(via, "power off", {n: vm.PowerOffVM_Task for n, vm in on.items()}), "power off",
                   timeout=POWER_TIMEOUT_S)
    wait_tasks(start_tasks(via, "delete", {n: vm.Destroy_Task for n, vm in vms.items()}), "delete",
               timeout=DESTROY_TIMEOUT_S)
    return sorted(vms)


def marked_vms(si: vim.ServiceInstance, root: vim.ManagedEntity) -> list[tuple[vim.VirtualMachine, dict[str, str]]]:
    """(VM, its okdbench marks) for every VM anywhere below root, read in one PropertyCollector round trip.

    Recursive like the name-clash check (vms_named): an admin may have moved a node into a
    sub-folder, and destroy must still find it (issue 14). Unmarked VMs come back with no marks.
    """
    with connection_guard(root, "listing VMs to find this cluster's"):
        found = vm_properties(si, root, ["config.extraConfig"])
    return [(vm, {opt.key: str(opt.value) for opt in props.get("config.extraConfig") or []
                  if opt.key in (CLUSTER_KEY, NODE_KEY)}) for vm, props in found]


def cluster_vms(si: vim.ServiceInstance, spec: ClusterSpec, node: str | None = None) -> dict[str, vim.VirtualMachine]:
    """Inventory path -> VM, for VMs anywhere in the datacenter that okdbench marked as this
    cluster's (and as `node`, when given): nothing else is ever touched."""
    dc = find(si, paths(spec).datacenter)
    if not isinstance(dc, vim.Datacenter):
        return {}
    found = {}
    for vm, marks in marked_vms(si, dc.vmFolder):
        if marks.get(CLUSTER_KEY) == spec.name and (node is None or marks.get(NODE_KEY) == node):
            found[entity_path(si, vm)] = vm
    return found


def destroy_cluster(si: vim.ServiceInstance, spec: ClusterSpec) -> list[str]:
    """Delete this cluster's VMs (wherever they are in the datacenter) and then its folder if empty.
    Idempotent: returns the inventory paths it removed."""
    p = paths(spec)
    if find(si, p.datacenter) is None:
        raise UserError(f"vsphere.datacenter: datacenter {p.datacenter} not found in vCenter; check the spec")
    folder = find(si, p.folder)
    if folder is not None and not isinstance(folder, vim.Folder):
        raise UserError(f"vsphere.folder: {p.folder} is not a VM folder; check the spec")
    vms = cluster_vms(si, spec)
    outside = sorted(path for path in vms if not path.startswith(p.folder + "/"))
    if outside:
        log.info("vsphere destroy: %d VM(s) of %s were moved outside %s: %s", len(outside), spec.name, p.folder,
                 ", ".join(outside[:5]))
    removed = delete_vms(vms)
    if folder is None:
        if not removed:
            log.info("vsphere destroy: %s does not exist and no VM of %s is left; nothing to delete", p.folder, spec.name)
        return removed
    leftovers = sorted(e.name for e in folder.childEntity)
    if leftovers:
        log.warning("vsphere destroy: kept folder %s: it holds objects okdbench did not create (%s)",
                    p.folder, ", ".join(leftovers[:5]))
    else:
        wait_tasks({"folder": folder.Destroy_Task()}, "delete folder", timeout=DESTROY_TIMEOUT_S)
        removed.append(p.folder)
    log.info("vsphere destroy: removed %d object(s)", len(removed))
    return removed


def remove_node(si: vim.ServiceInstance, spec: ClusterSpec, node: str) -> list[str]:
    """Delete the VM okdbench marked as `node` of this cluster, wherever it is in the datacenter."""
    return delete_vms(cluster_vms(si, spec, node))


# --------------------------------------------------------------------------- facts


def facts(si: vim.ServiceInstance, spec: ClusterSpec) -> dict:
    inv_paths = paths(spec)
    about = si.content.about
    out: dict = {
        "hypervisor": "vsphere",
        "vcenter_version": about.version,
        "vcenter_build": about.build,
        "vcenter_product": about.fullName,
        "api_version": about.apiVersion,
    }
    cluster = find(si, inv_paths.cluster)
    if isinstance(cluster, vim.ComputeResource):
        hosts = list(cluster.host)
        out["hosts"] = len(hosts)
        out["esxi_versions"] = sorted({f"{h.config.product.version} build {h.config.product.build}"
                                       for h in hosts if h.config})
        out["host_cpu_models"] = sorted({h.summary.hardware.cpuModel for h in hosts if h.summary.hardware})
        # Singular keys match the KVM facts, so reports can put the platforms side by side.
        out["esxi_version"] = ", ".join(out["esxi_versions"]) or "unknown"
        out["host_cpu_model"] = ", ".join(out["host_cpu_models"]) or "unknown"
        out["ha"] = ha_config(cluster)  # a fact only: okdbench never fails a host to test HA
    ds = find(si, inv_paths.datastore)
    if isinstance(ds, vim.Datastore):
        out["datastore"] = ds.name
        out["datastore_type"] = ds.summary.type
    return out
