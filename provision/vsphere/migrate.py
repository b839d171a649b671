"""vMotion one vSphere node VM to another ESXi host of the spec's cluster (RelocateVM_Task).

Only the compute host changes (shared storage stays), as in a maintenance-mode evacuation. The
task is bounded by lack of progress, so a long vMotion over a busy network is allowed to finish.
"""

from __future__ import annotations

import logging

from pyVmomi import vim

from provision.spec import ClusterSpec
from provision.vsphere.connect import session
from provision.vsphere.inventory import find, paths
from provision.vsphere.power import PowerError, find_vm, wait_one

log = logging.getLogger("okdbench.vsphere.migrate")

STALL_S = 300.0


def host_of(vm: vim.VirtualMachine) -> str:
    host = vm.runtime.host
    return host.name if host is not None else ""


def _dest_host(si: vim.ServiceInstance, spec: ClusterSpec, vm: str, dest: str, phase: str) -> vim.HostSystem:
    cluster_path = paths(spec).cluster
    cluster = find(si, cluster_path)
    hosts = {h.name: h for h in getattr(cluster, "host", [])}
    if dest not in hosts:
        raise PowerError(f"vsphere {phase} of {vm}: host {dest!r} is not in cluster {cluster_path} "
                         f"(it has: {', '.join(sorted(hosts)) or 'no hosts'}); fix resilience.migrate_to")
    return hosts[dest]


def migrate(spec: ClusterSpec, vm: str, dest: str, *, insecure: bool = False, stall_s: float = STALL_S):
    """Move the running VM to ESXi host `dest`; returns (seconds, source host name)."""
    phase = f"vMotion to {dest}"
    with session(spec, insecure=insecure) as si:
        obj = find_vm(si, spec, vm, phase)
        host = _dest_host(si, spec, vm, dest, phase)
        source = host_of(obj)
        if source == dest:
            raise PowerError(f"vsphere {phase} of {vm}: the VM already runs on {dest}; name another host in resilience.migrate_to")
        relocate = vim.vm.RelocateSpec(host=host, pool=host.parent.resourcePool)
        elapsed = wait_one(obj, vm, phase, lambda o: o.RelocateVM_Task(
            spec=relocate, priority=vim.VirtualMachine.MovePriority.highPriority), stall_s)
        log.info("vsphere %s of %s: done in %.2f s (from %s)", phase, vm, elapsed, source)
        return elapsed, source
