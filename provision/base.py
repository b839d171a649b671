"""What every platform module returns, and the interface it exposes.

A platform package (provision/kvm/, provision/vsphere/) provides in its platform.py:
    render(spec, out_dir: Path) -> list[Path]
    provision(spec, workdir: Path, *, insecure: bool = False) -> ProvisionResult
    destroy(spec, *, insecure: bool = False) -> list[str]
    hypervisor_facts(spec, *, insecure: bool = False) -> dict
    remove_bootstrap(spec, *, insecure: bool = False) -> None
provision/lifecycle.py drives them; nothing else should call them in sequence by hand.

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


PLATFORM_FUNCTIONS = ("render", "provision", "destroy", "hypervisor_facts", "remove_bootstrap")


def platform_module(platform: str) -> ModuleType:
    """provision.<platform>.platform, checked to expose the whole interface."""
    module = importlib.import_module(f"provision.{platform}.platform")
    missing = [f for f in PLATFORM_FUNCTIONS if not callable(getattr(module, f, None))]
    if missing:
        raise TypeError(f"provision.{platform}.platform lacks {', '.join(missing)}")
    return module


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
    module = importlib.import_module(f"provision.{platform}.stats")
    if not callable(getattr(module, "open_stats", None)):
        raise TypeError(f"provision.{platform}.stats lacks open_stats")
    return module
