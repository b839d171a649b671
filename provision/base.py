"""What every platform module returns, and the interface it exposes.

A platform package (provision/kvm/, provision/vsphere/) provides in its platform.py:
    render(spec, out_dir: Path) -> list[Path]
    provision(spec, workdir: Path, *, insecure: bool = False) -> ProvisionResult
    destroy(spec, *, insecure: bool = False) -> list[str]
    hypervisor_facts(spec, *, insecure: bool = False) -> dict
    remove_bootstrap(spec, *, insecure: bool = False) -> None
    clear_ignition(spec, *, insecure: bool = False) -> list[str]   (after install: no ignition left on the hypervisor)
provision/lifecycle.py drives them; nothing else should call them in sequence by hand.
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


def platform_module(platform: str) -> ModuleType:
    """provision.<platform>.platform, checked to expose the whole interface."""
    module = importlib.import_module(f"provision.{platform}.platform")
    missing = [f for f in PLATFORM_FUNCTIONS if not callable(getattr(module, f, None))]
    if missing:
        raise TypeError(f"provision.{platform}.platform lacks {', '.join(missing)}")
    return module
