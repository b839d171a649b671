"""KVM has no counterpart of vSphere HA's host-failure restart: each call is one line saying so."""

from __future__ import annotations

from typing import NoReturn

from provision.base import DisruptionRefused
from provision.kvm.power import PowerError
from provision.spec import ClusterSpec


class Unsupported(PowerError, DisruptionRefused):
    """No HA restart on KVM; nothing was changed."""


def _refuse(vm: str, phase: str) -> NoReturn:
    raise Unsupported(f"kvm {phase} of {vm}: not supported on kvm: libvirt has no HA; use pacemaker (or another "
                     "cluster manager) to restart the VMs of a failed host, and remove ha-restart from resilience.disruptions")


def ha_restart(spec: ClusterSpec, vm: str, host: str, how: str, *, insecure: bool = False) -> NoReturn:
    _refuse(vm, "ha-restart")


def ha_restore(spec: ClusterSpec, vm: str, host: str, *, insecure: bool = False) -> NoReturn:
    _refuse(vm, "ha-restart restore")


def ha_host_back(spec: ClusterSpec, vm: str, host: str, how: str, *, insecure: bool = False) -> NoReturn:
    _refuse(vm, "ha-restart host return")
