"""Disrupt one vSphere node VM through vCenter: power off/on, suspend/resume, reset, guest reboot.

Each call opens its own session, returns the seconds vCenter took, and raises one UserError line
naming the VM and the phase. vSphere has no pause: the freeze is a suspend (memory written to the
datastore) and resume is a power-on, so a vSphere freeze costs more than a KVM pause by design.
Restoring operations (power_on, resume) are idempotent, so a `finally` may call them blindly.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from pyVmomi import vim, vmodl

from plumbing.errors import UserError
from provision.spec import ClusterSpec
from provision.vsphere.connect import connection_guard, session
from provision.vsphere.inventory import find, paths, vms_named
from provision.vsphere.tasks import TaskFailed, fault_text, wait_tasks

log = logging.getLogger("okdbench.vsphere.power")

STALL_S = 120.0  # a power task that shows no progress for this long is stuck

_STATE = {"poweredOn": "running", "poweredOff": "shutoff", "suspended": "paused"}


class PowerError(UserError):
    """A vCenter operation on one VM failed or stalled; one line naming the VM and the phase."""


def find_vm(si: vim.ServiceInstance, spec: ClusterSpec, vm: str, phase: str) -> vim.VirtualMachine:
    dc_path = paths(spec).datacenter
    dc = find(si, dc_path)
    if dc is None:
        raise PowerError(f"vsphere {phase} of {vm}: datacenter {dc_path} not found; fix vsphere.datacenter")
    found = vms_named(si, dc, {vm}).get(vm)
    if found is None:
        raise PowerError(f"vsphere {phase} of {vm}: no such VM in {dc_path}; check the node-to-VM mapping "
                         "(resilience.vms in the spec)")
    return found


def state_of(vm: vim.VirtualMachine) -> str:
    return _STATE.get(str(vm.runtime.powerState), "unknown")


def state(spec: ClusterSpec, vm: str, *, insecure: bool = False) -> str:
    """'running', 'paused' (suspended) or 'shutoff', in the KVM module's words."""
    with session(spec, insecure=insecure) as si:
        return state_of(find_vm(si, spec, vm, "state"))


def run_task(spec: ClusterSpec, vm: str, phase: str, start: Callable[[vim.VirtualMachine], vim.Task],
             skip_if: set[str] = frozenset(), *, insecure: bool = False, stall_s: float = STALL_S) -> float:
    """Start one task on the VM and wait for it, bounded by lack of progress; seconds taken."""
    with session(spec, insecure=insecure) as si:
        obj = find_vm(si, spec, vm, phase)
        before = state_of(obj)
        if before in skip_if:
            log.info("vsphere %s of %s: already %s, nothing to do", phase, vm, before)
            return 0.0
        elapsed = wait_one(obj, vm, phase, start, stall_s)
        log.info("vsphere %s of %s: done in %.2f s (%s -> %s)", phase, vm, elapsed, before, state_of(obj))
        return elapsed


def wait_one(obj: vim.VirtualMachine, vm: str, phase: str, start: Callable[[vim.VirtualMachine], vim.Task],
             stall_s: float) -> float:
    """Start one task on the VM and wait for it while it progresses; seconds taken, or one PowerError line."""
    t0 = time.monotonic()
    try:
        with connection_guard(obj, f"starting {phase} of {vm}"):
            task = start(obj)
        wait_tasks({vm: task}, phase, timeout=stall_s, stall=True)
    except TaskFailed as exc:
        raise PowerError(f"vsphere {phase} of {vm}: {str(exc).removeprefix(f'vsphere {phase} failed: {vm}: ')}") from None
    except vmodl.MethodFault as exc:
        raise PowerError(f"vsphere {phase} of {vm}: vCenter refused: {fault_text(exc)}") from None
    return time.monotonic() - t0


def power_off(spec: ClusterSpec, vm: str, *, insecure: bool = False) -> float:
    """Hard power-off (no guest shutdown)."""
    return run_task(spec, vm, "power-off", lambda o: o.PowerOffVM_Task(), {"shutoff"}, insecure=insecure)


def power_on(spec: ClusterSpec, vm: str, *, insecure: bool = False) -> float:
    return run_task(spec, vm, "power-on", lambda o: o.PowerOnVM_Task(), {"running"}, insecure=insecure)


def pause(spec: ClusterSpec, vm: str, *, insecure: bool = False) -> float:
    """The freeze: SuspendVM (vSphere has no pause that keeps memory resident)."""
    return run_task(spec, vm, "suspend", lambda o: o.SuspendVM_Task(), {"paused"}, insecure=insecure)


def resume(spec: ClusterSpec, vm: str, *, insecure: bool = False) -> float:
    return run_task(spec, vm, "resume", lambda o: o.PowerOnVM_Task(), {"running"}, insecure=insecure)


def reset(spec: ClusterSpec, vm: str, *, insecure: bool = False) -> float:
    return run_task(spec, vm, "reset", lambda o: o.ResetVM_Task(), insecure=insecure)


def reboot(spec: ClusterSpec, vm: str, *, insecure: bool = False) -> float:
    """Graceful reboot through VMware Tools (RebootGuest); returns once vCenter accepted it."""
    phase = "guest reboot"
    with session(spec, insecure=insecure) as si:
        obj = find_vm(si, spec, vm, phase)
        t0 = time.monotonic()
        try:
            with connection_guard(obj, f"{phase} of {vm}"):
                obj.RebootGuest()
        except vmodl.MethodFault as exc:
            hint = "; open-vm-tools must run in the guest" if isinstance(exc, vim.fault.ToolsUnavailable) else ""
            raise PowerError(f"vsphere {phase} of {vm}: vCenter refused: {fault_text(exc)}{hint}") from None
        return time.monotonic() - t0
