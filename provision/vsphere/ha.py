"""vSphere HA: the cluster's configuration as facts for run.json, and the opt-in measured host failure.

Without resilience.ha_restart nothing here changes anything. With it, ha_restart() checks that HA
can restart the VM (preconditions, one line each naming VM, host and what to fix), fails the ESXi
host the user named (RebootHost_Task / ShutdownHost_Task, force=True: vSphere HA restarts the VMs of
a host rebooted or shut down through vCenter, unlike one shut down at its console), and measures
from vCenter's own change notifications (WaitForUpdatesEx) when the VM runs again, and where.
Waits end when nothing changes for a while, never at a fixed total.
"""

from __future__ import annotations

import logging
import time

from pyVmomi import vim, vmodl

from provision.base import DisruptionRefused, HostFailure
from provision.spec import ClusterSpec
from provision.vsphere.connect import connection_guard, session
from provision.vsphere.inventory import find, paths, vm_name, vm_properties
from provision.vsphere.power import PowerError, find_vm, state_of
from provision.vsphere.tasks import TaskFailed, fault_text, wait_tasks
from provision.vsphere.watch import Watch

log = logging.getLogger("okdbench.vsphere.ha")

# HA waits up to 600 s (default) for the VMs of one restart priority to be ready before it powers on
# the next priority's: no change on our VM for that long plus a minute means HA will not restart it.
STALL_S = 660.0
# An ESXi server reboots in 5-15 min (firmware POST included); vCenter shows nothing in between.
HOST_BACK_S = 1800.0
PROGRESS_EVERY_S = 10.0
VM_PROPS = ["runtime.powerState", "runtime.host", "runtime.connectionState"]
HOST_PROPS = ["runtime.connectionState", "runtime.powerState", "runtime.inMaintenanceMode"]


def ha_config(cluster: object) -> dict:
    """The cluster's HA settings; {} when it is not a cluster or vCenter does not say."""
    if not isinstance(cluster, vim.ClusterComputeResource):
        return {}
    das = getattr(getattr(cluster, "configurationEx", None), "dasConfig", None)
    return ha_facts(das) if das is not None else {}


def ha_facts(das: vim.cluster.DasConfigInfo) -> dict:
    """enabled, host monitoring, admission control, VM monitoring, restart priority, isolation response."""
    defaults = das.defaultVmSettings
    return {
        "enabled": bool(das.enabled),
        "host_monitoring": das.hostMonitoring,
        "admission_control": bool(das.admissionControlEnabled),
        "vm_monitoring": das.vmMonitoring,
        "restart_priority": getattr(defaults, "restartPriority", None),
        "isolation_response": getattr(defaults, "isolationResponse", None),
    }


# ------------------------------------------------------------------ preconditions


class Refused(PowerError, DisruptionRefused):
    """A precondition of the HA restart is not met; nothing was changed."""


def restart_priority(cluster: vim.ClusterComputeResource, vm: vim.VirtualMachine) -> str:
    """HA's restart priority for this VM: its override, else the cluster default (vSphere's default: medium)."""
    cfg = cluster.configurationEx
    defaults = getattr(cfg.dasConfig, "defaultVmSettings", None)
    chosen = getattr(defaults, "restartPriority", None) or "medium"
    for override in getattr(cfg, "dasVmConfig", None) or []:
        if override.key is not None and override.key._moId == vm._moId:
            own = getattr(override.dasSettings, "restartPriority", None) or override.restartPriority
            if own and own != "clusterRestartPriority":
                chosen = own
    return chosen


def _usable(host: vim.HostSystem) -> bool:
    rt = host.runtime
    return rt.connectionState == "connected" and not rt.inMaintenanceMode and rt.powerState == "poweredOn"


def running_on(si: vim.ServiceInstance, cluster: vim.ClusterComputeResource, host: vim.HostSystem) -> list[str]:
    """Names of the cluster's powered-on VMs whose runtime.host is `host`, in one PropertyCollector call."""
    return [props["name"] for _, props in vm_properties(si, cluster, ["name", "runtime.host", "runtime.powerState"])
            if getattr(props.get("runtime.host"), "_moId", None) == host._moId
            and props.get("runtime.powerState") == "poweredOn"]


def preconditions(si: vim.ServiceInstance, spec: ClusterSpec, vm: str, host: str
                  ) -> tuple[vim.ClusterComputeResource, vim.VirtualMachine, vim.HostSystem]:
    """Everything HA needs to restart vm after `host` fails; the first unmet one is one PowerError line."""
    where = f"vsphere ha-restart of {vm} (host {host}, preconditions)"
    cluster_path = paths(spec).cluster
    cluster = find(si, cluster_path)
    if not isinstance(cluster, vim.ClusterComputeResource):
        raise Refused(f"{where}: {cluster_path} is not a vSphere cluster, so it has no HA; fix vsphere.cluster "
                      "or remove ha-restart from resilience.disruptions")
    das = cluster.configurationEx.dasConfig
    if not das.enabled:
        raise Refused(f"{where}: vSphere HA is off in cluster {cluster_path} (dasConfig.enabled false); turn HA on, "
                      "or remove ha-restart from resilience.disruptions")
    if das.hostMonitoring == "disabled":
        raise Refused(f"{where}: HA host monitoring is disabled in cluster {cluster_path}, so HA ignores host "
                      "failures; enable host monitoring")
    try:
        obj = find_vm(si, spec, vm, "ha-restart")
    except PowerError as exc:
        raise Refused(str(exc)) from None
    priority = restart_priority(cluster, obj)
    if priority == "disabled":
        raise Refused(f"{where}: HA restart priority of {vm} is disabled, so HA would leave it off; set it to "
                      "another priority (the cluster default or a VM override)")
    hosts = {h.name: h for h in cluster.host}
    if host not in hosts:
        raise Refused(f"{where}: host {host!r} is not in cluster {cluster_path} (it has: "
                      f"{', '.join(sorted(hosts)) or 'no hosts'}); fix resilience.ha_restart.host")
    target = hosts[host]
    if not _usable(target):
        raise Refused(f"{where}: host {host} is {target.runtime.connectionState}"
                      f"{', in maintenance mode' if target.runtime.inMaintenanceMode else ''}; it must be "
                      "connected and in service to be failed")
    if state_of(obj) != "running":
        raise Refused(f"{where}: {vm} is {obj.runtime.powerState}; HA restarts only VMs that were running")
    runs_on = obj.runtime.host.name if obj.runtime.host is not None else "no host"
    if runs_on != host:
        raise Refused(f"{where}: {vm} runs on {runs_on}, not on {host}; vMotion it to {host} first, or name "
                      f"{runs_on} in resilience.ha_restart.host")
    spare = [h for name, h in hosts.items() if name != host and _usable(h)]
    if not spare:
        states = ", ".join(f"{n}: {'maintenance mode' if h.runtime.inMaintenanceMode else h.runtime.connectionState}"
                           for n, h in sorted(hosts.items()) if n != host) or "none"
        raise Refused(f"{where}: no other host of {cluster_path} can take {vm} (other hosts: {states}); "
                      "HA needs a second connected host in service")
    ours = {vm_name(spec, m.name) for m in spec.machines()} | set(spec.resilience.vms.values()) | {vm}
    running = running_on(si, cluster, target)
    foreign = sorted(n for n in running if n not in ours and not n.startswith("vCLS"))  # vCLS: vCenter's own agents
    if foreign:
        raise Refused(f"{where}: host {host} also runs {len(foreign)} VM(s) of no okdbench cluster "
                      f"({', '.join(foreign[:5])}{' …' if len(foreign) > 5 else ''}), which the host failure would "
                      "kill too; move them away (vMotion), or name a host with nothing else on it")
    also = sorted(n for n in running if n in ours and n != vm)
    if also:
        log.warning("vsphere ha-restart: host %s also runs %s of this cluster; they go down with it", host, ", ".join(also))
    log.info("vsphere ha-restart of %s: HA on in %s, restart priority %s, %d other host(s) in service", vm,
             cluster_path, priority, len(spare))
    return cluster, obj, target


# ------------------------------------------------------------------ the host failure


def _fail(target: vim.HostSystem, vm: str, host: str, how: str, stall_s: float) -> None:
    phase = f"ha-restart {how} of host {host}"
    try:
        with connection_guard(target, f"starting {phase}"):
            task = target.RebootHost_Task(force=True) if how == "reboot" else target.ShutdownHost_Task(force=True)
        wait_tasks({host: task}, phase, timeout=stall_s, stall=True)
    except TaskFailed as exc:
        error = Refused if "still running" not in str(exc) else PowerError  # a stuck task may still fail the host
        raise error(f"vsphere ha-restart of {vm}: {how} of host {host} failed: "
                    f"{str(exc).removeprefix(f'vsphere {phase} failed: {host}: ')}") from None
    except vmodl.MethodFault as exc:
        raise Refused(f"vsphere ha-restart of {vm}: vCenter refused the {how} of host {host}: {fault_text(exc)}") from None


def ha_restart(spec: ClusterSpec, vm: str, host: str, how: str, *, insecure: bool = False,
               stall_s: float = STALL_S) -> HostFailure:
    """Fail `host` and return when HA has vm poweredOn on another host; PowerError when it does not happen."""
    with session(spec, insecure=insecure) as si:
        _, obj, target = preconditions(si, spec, vm, host)
        vm_id, host_id = obj._moId, target._moId
        with Watch(si, [(obj, VM_PROPS), (target, HOST_PROPS)]) as watch:
            now = {(c.obj, c.name): c.value for c in watch.wait(0)}  # current values; later waits: changes
            t0 = time.monotonic()
            log.warning("vsphere ha-restart of %s: %s of host %s (forced: every VM on it goes down)", vm, how, host)
            _fail(target, vm, host, how, stall_s)
            host_down = vm_down = None
            last_change = last_log = time.monotonic()
            while True:
                for c in watch.wait(min(PROGRESS_EVERY_S, stall_s)):
                    now[(c.obj, c.name)] = c.value
                    last_change = c.t
                    if host_down is None and (c.obj, c.name) == (host_id, "runtime.connectionState") and c.value != "connected":
                        host_down = c.t - t0
                        log.info("vsphere ha-restart of %s: host %s %s after %.1f s", vm, host, c.value, host_down)
                    if vm_down is None and (c.obj, c.name) == (vm_id, "runtime.powerState") and c.value != "poweredOn":
                        vm_down = c.t - t0
                on = now.get((vm_id, "runtime.host"))
                on_id = getattr(on, "_moId", None)
                running = now.get((vm_id, "runtime.powerState")) == "poweredOn" and \
                    now.get((vm_id, "runtime.connectionState"), "connected") == "connected"
                if running and on_id not in (None, host_id):
                    restart = last_change - t0
                    new_host = on.name
                    log.info("vsphere ha-restart of %s: running on %s %.1f s after the %s of %s", vm, new_host, restart, how, host)
                    return HostFailure(vm=vm, host=host, how=how, new_host=new_host, restart_s=restart,
                                       host_down_s=host_down, vm_down_s=vm_down)
                if running and on_id == host_id and host_down is not None and \
                        now.get((host_id, "runtime.connectionState")) == "connected":
                    raise PowerError(f"vsphere ha-restart of {vm}: the VM came back on {host} itself after the host's "
                                     "reboot: HA did not restart it elsewhere; check the cluster's HA events in vCenter")
                t = time.monotonic()
                if t - last_change > stall_s:
                    host_state = now.get((host_id, "runtime.connectionState"), "?")
                    raise PowerError(f"vsphere ha-restart of {vm}: no change for {stall_s:.0f} s, {t - t0:.0f} s after the "
                                     f"{how} of host {host} (host {host_state}, VM {now.get((vm_id, 'runtime.powerState'))}): "
                                     "HA did not restart it; check the cluster's HA events in vCenter")
                if t - last_log >= PROGRESS_EVERY_S:
                    last_log = t
                    log.info("vsphere ha-restart of %s: waiting for HA (host %s %s, VM %s), %.0f s elapsed", vm, host,
                             now.get((host_id, "runtime.connectionState")), now.get((vm_id, "runtime.powerState")), t - t0)


# ------------------------------------------------------------------ afterwards


def ha_restore(spec: ClusterSpec, vm: str, host: str, *, insecure: bool = False) -> str:
    """Power vm on only where that is safe: never on a host that is down (HA's job, or the operator's)."""
    phase = "ha-restart restore"
    with session(spec, insecure=insecure) as si:
        obj = find_vm(si, spec, vm, phase)
        on = obj.runtime.host
        if state_of(obj) == "running" and obj.runtime.connectionState == "connected":
            return f"nothing (running on {on.name if on else '?'})"
        if on is None or on.runtime.connectionState != "connected":
            raise PowerError(f"vsphere {phase} of {vm}: its host {on.name if on else '?'} is "
                             f"{on.runtime.connectionState if on else 'unknown'} and HA did not restart it; once the host "
                             "is back, power the VM on (or register it on another host)")
    from provision.vsphere.power import power_on

    power_on(spec, vm, insecure=insecure)
    return f"powered on (on {on.name}, which is back)"


def ha_host_back(spec: ClusterSpec, vm: str, host: str, how: str, *, insecure: bool = False,
                 stall_s: float = HOST_BACK_S) -> str:
    """After a reboot: wait for the host to reconnect, then vMotion vm back, so the next run finds it where the
    spec's ha_restart.host expects it. After a shutdown: a PowerError line, since vCenter cannot power it on."""
    phase = "ha-restart host return"
    if how == "shutdown":
        raise PowerError(f"vsphere {phase}: host {host} was shut down and could not be restored by okdbench (vCenter "
                         "cannot power on a host it shut down); power it on by hand (its BMC) and check it reconnects")
    with session(spec, insecure=insecure) as si:
        target = next((h for h in getattr(find(si, paths(spec).cluster), "host", []) if h.name == host), None)
        if target is None:
            raise PowerError(f"vsphere {phase}: host {host} could not be restored: it left the cluster; check it in vCenter")
        t0 = last_log = time.monotonic()
        with Watch(si, [(target, HOST_PROPS)]) as watch:
            state = {c.name: c.value for c in watch.wait(0)}
            last_change = time.monotonic()
            while not (state.get("runtime.connectionState") == "connected" and state.get("runtime.powerState") == "poweredOn"):
                for c in watch.wait(min(PROGRESS_EVERY_S, stall_s)):
                    state[c.name], last_change = c.value, c.t
                t = time.monotonic()
                if t - last_change > stall_s:
                    raise PowerError(f"vsphere {phase}: host {host} could not be restored: still "
                                     f"{state.get('runtime.connectionState')} {t - t0:.0f} s after its reboot; check it "
                                     "and reconnect it in vCenter")
                if t - last_log >= PROGRESS_EVERY_S:
                    last_log = t
                    log.info("vsphere %s: host %s %s, %.0f s elapsed", phase, host, state.get("runtime.connectionState"), t - t0)
        back = time.monotonic() - t0
        obj = find_vm(si, spec, vm, phase)
        if obj.runtime.host is not None and obj.runtime.host.name == host:
            return f"host {host} back after {back:.0f} s; {vm} already on it"
    from provision.vsphere.migrate import migrate

    seconds, source = migrate(spec, vm, host, insecure=insecure)
    return f"host {host} back after {back:.0f} s; {vm} moved back from {source} (vMotion, {seconds:.1f} s)"
