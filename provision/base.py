"""What every platform module returns, and the interface it exposes.

A platform package (provision/kvm/, provision/vsphere/) provides in its platform.py:
    render(spec, out_dir: Path) -> list[Path]
    provision(spec, workdir: Path, *, insecure: bool = False) -> ProvisionResult
    destroy(spec, *, insecure: bool = False) -> list[str]
    hypervisor_facts(spec, *, insecure: bool = False) -> dict
    remove_bootstrap(spec, *, insecure: bool = False) -> None
    clear_ignition(spec, *, insecure: bool = False) -> list[str]   (after install: no ignition left on the hypervisor)
provision/lifecycle.py drives them; nothing else should call them in sequence by hand.

Disruptions of one node VM (the resilience suite), in provision/<platform>/power.py and migrate.py,
reached through the functions at the end of this module:
    power_off / power_on / pause / resume / reset / reboot (spec, vm) -> seconds the hypervisor took
    state(spec, vm) -> 'running' | 'paused' | 'shutoff' | …;  restore(spec, vm) -> what it did
    migrate(spec, vm, dest) -> Migration (KVM: dest is a libvirt URI; vSphere: an ESXi host name)
The opt-in HA restart (vSphere only; KVM's ha.py refuses in one line), in provision/<platform>/ha.py:
    ha_restart(spec, vm, host, how) -> HostFailure   (fail the ESXi host, measure HA's restart of vm)
    ha_restore(spec, vm, host) -> what it did        (never powers vm on a host that is down)
    ha_host_back(spec, vm, host, how) -> what it did (wait for a rebooted host, move vm back)
Run conditions (hypervisor-side contention counters) come from provision/<platform>/stats.py:
    open_stats(spec, *, insecure: bool = False) -> StatsSource   (see `stats_module`)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any


@dataclass
class ProvisionedVM:
    name: str
    role: str
    mac: str
    ip: str
    serial_log: Path | None
    ref: str  # the platform's handle: libvirt domain UUID, vSphere managed object id


@dataclass
class ProvisionResult:
    platform: str
    cluster: str
    vms: list[ProvisionedVM]
    timings: dict[str, float] = field(default_factory=dict)  # metric name -> seconds
    facts: dict[str, Any] = field(default_factory=dict)  # hypervisor facts for run.json
    workdir: Path = Path(".")
    kubeconfig: Path | None = None
    findings: list[str] = field(default_factory=list)  # one line each: CSRs left pending, etc.


PLATFORM_FUNCTIONS = ("render", "provision", "destroy", "hypervisor_facts", "remove_bootstrap", "clear_ignition")


def _checked(platform: str, part: str, functions: tuple[str, ...]) -> ModuleType:
    """provision.<platform>.<part>, checked to expose every one of `functions`."""
    module = importlib.import_module(f"provision.{platform}.{part}")
    missing = [f for f in functions if not callable(getattr(module, f, None))]
    if missing:
        raise TypeError(f"provision.{platform}.{part} lacks {', '.join(missing)}")
    return module


def platform_module(platform: str) -> ModuleType:
    """provision.<platform>.platform, checked to expose the whole interface."""
    return _checked(platform, "platform", PLATFORM_FUNCTIONS)


# ------------------------------------------------------------------ disruptions of one node VM

POWER_FUNCTIONS = ("power_off", "power_on", "pause", "resume", "reset", "reboot", "state")


@dataclass
class Migration:
    vm: str
    dest: str
    duration_s: float
    downtime_ms: float | None = None  # the hypervisor's own figure, when it reports one
    source: str = ""


def power_module(platform: str) -> ModuleType:
    """provision.<platform>.power, checked to expose every disruption."""
    return _checked(platform, "power", POWER_FUNCTIONS)


def _power(op: str, spec: Any, vm: str, insecure: bool) -> Any:
    fn = getattr(power_module(spec.platform), op)
    return fn(spec, vm, insecure=insecure) if spec.platform == "vsphere" else fn(spec, vm)


def power_off(spec: Any, vm: str, *, insecure: bool = False) -> float:
    return _power("power_off", spec, vm, insecure)


def power_on(spec: Any, vm: str, *, insecure: bool = False) -> float:
    return _power("power_on", spec, vm, insecure)


def pause(spec: Any, vm: str, *, insecure: bool = False) -> float:
    return _power("pause", spec, vm, insecure)


def resume(spec: Any, vm: str, *, insecure: bool = False) -> float:
    return _power("resume", spec, vm, insecure)


def reset(spec: Any, vm: str, *, insecure: bool = False) -> float:
    return _power("reset", spec, vm, insecure)


def reboot(spec: Any, vm: str, *, insecure: bool = False) -> float:
    return _power("reboot", spec, vm, insecure)


def state(spec: Any, vm: str, *, insecure: bool = False) -> str:
    return _power("state", spec, vm, insecure)


def restore(spec: Any, vm: str, *, insecure: bool = False) -> str:
    """Bring a disrupted VM back to running, whatever was done to it; returns what it did."""
    now = state(spec, vm, insecure=insecure)
    if now == "paused":
        resume(spec, vm, insecure=insecure)
        return "resumed"
    if now in ("shutoff", "shutdown", "crashed"):
        power_on(spec, vm, insecure=insecure)
        return "powered on"
    return f"nothing ({now})"


def migrate(spec: Any, vm: str, dest: str, *, insecure: bool = False, **options: Any) -> Migration:
    """Live-migrate vm to dest (KVM: a libvirt URI, peer-to-peer; vSphere: vMotion to an ESXi host)."""
    module = importlib.import_module(f"provision.{spec.platform}.migrate")
    if spec.platform == "vsphere":
        seconds, source = module.migrate(spec, vm, dest, insecure=insecure, **options)
        return Migration(vm=vm, dest=dest, duration_s=seconds, source=source)
    result = module.migrate(spec, vm, dest, **options)
    return Migration(vm=vm, dest=dest, duration_s=result.duration_s, downtime_ms=result.downtime_ms,
                     source=spec.kvm.uri)


@dataclass
class HostFailure:
    """What vSphere HA did after okdbench failed the host the VM ran on. Seconds from the host's reboot/shutdown call."""

    vm: str
    host: str  # the host okdbench failed
    how: str  # reboot | shutdown
    new_host: str  # where HA powered the VM on again
    restart_s: float  # -> the VM poweredOn on new_host
    host_down_s: float | None = None  # -> vCenter reported the host not responding
    vm_down_s: float | None = None  # -> vCenter reported the VM not running (None: it never said so)


class DisruptionRefused(Exception):
    """Mixed into a platform's error when a disruption was refused before anything changed (a precondition)."""


HA_FUNCTIONS = ("ha_restart", "ha_restore", "ha_host_back")


def ha_module(platform: str) -> ModuleType:
    """provision.<platform>.ha, checked to expose the HA restart."""
    return _checked(platform, "ha", HA_FUNCTIONS)


def ha_restart(spec: Any, vm: str, host: str, how: str, *, insecure: bool = False) -> HostFailure:
    """Fail ESXi host `host` (reboot/shutdown, forced) and measure HA restarting vm elsewhere (opt-in)."""
    return ha_module(spec.platform).ha_restart(spec, vm, host, how, insecure=insecure)


def ha_restore(spec: Any, vm: str, host: str, *, insecure: bool = False) -> str:
    return ha_module(spec.platform).ha_restore(spec, vm, host, insecure=insecure)


def ha_host_back(spec: Any, vm: str, host: str, how: str, *, insecure: bool = False) -> str:
    return ha_module(spec.platform).ha_host_back(spec, vm, host, how, insecure=insecure)


# ---------------------------------------------------------------- run conditions


@dataclass(frozen=True)
class Reading:
    """One condition over one window: e.g. CPU wait of one node VM, as a fraction of a vCPU."""

    metric: str  # context.hv.cpu.wait, context.host.vcpu_ratio, ...
    value: float
    unit: str
    node: str  # the spec's machine name, or host:<name> for the hypervisor host
    better: str = "lower"


class StatsSource:
    """Hypervisor-side conditions of a cluster's VMs, window by window.

    begin() at the start of a window, sample() every few seconds during it (from a background
    thread), end() -> readings over the window. Any method may raise; the caller turns that into
    a one-line note and stops using the source.
    """

    name = "hypervisor"

    def begin(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def sample(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def end(self) -> list[Reading]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


def stats_module(platform: str) -> ModuleType:
    """provision.<platform>.stats, checked to expose open_stats(spec, *, insecure)."""
    return _checked(platform, "stats", ("open_stats",))
