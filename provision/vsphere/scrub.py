"""Clear the install-time ignition from this cluster's VMs once their nodes have joined.

guestinfo.ignition.config.data carries the pull secret and the cluster's initial certificates;
it is readable by every vCenter user who can read the VM. An empty value removes an extraConfig
key in vCenter (govmomi's simulator appends it instead: the last value is what counts there).
"""

from __future__ import annotations

import functools
import logging

from pyVmomi import vim

from provision.spec import ClusterSpec
from provision.vsphere.plan import ENCODING_KEY, IGNITION_KEY
from provision.vsphere.tasks import start_tasks, wait_tasks
from provision.vsphere.vms import RECONFIGURE_TIMEOUT_S, cluster_vms

log = logging.getLogger("okdbench.vsphere")


def ignition_value(vm: vim.VirtualMachine) -> str:
    """The VM's current ignition guestinfo ('' when absent or cleared): the last entry for the key wins."""
    values = [str(o.value) for o in (vm.config.extraConfig if vm.config else []) if o.key == IGNITION_KEY]
    return values[-1] if values else ""


def clear_ignition(si: vim.ServiceInstance, spec: ClusterSpec) -> list[str]:
    """Empty the ignition guestinfo keys on this cluster's VMs that still carry them; returns the VM names.

    The VMs are found by their okdbench marks anywhere in the datacenter, as destroy finds them."""
    todo = {vm.name: vm for vm in cluster_vms(si, spec).values() if ignition_value(vm)}
    if not todo:
        return []
    cleared = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=IGNITION_KEY, value=""),
                                             vim.option.OptionValue(key=ENCODING_KEY, value="")])
    tasks = start_tasks(si, "clear ignition", {n: functools.partial(vm.ReconfigVM_Task, spec=cleared)
                                               for n, vm in todo.items()})
    wait_tasks(tasks, "clear ignition", timeout=RECONFIGURE_TIMEOUT_S)
    return sorted(todo)
