"""Disrupt one KVM node VM through libvirt: power off/on, pause/resume, reset, graceful reboot.

Every operation opens its own connection (a disruption may outlive a libvirtd restart), returns
the seconds the hypervisor took, and raises one UserError line naming the VM and the phase.
Restoring operations (power_on, resume) are idempotent, so a `finally` may call them blindly.
Waits for a state are bounded by lack of progress (no state change for `stall_s`), not by a total.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from plumbing.errors import UserError
from provision.kvm.libvirtd import _quiet_libvirt
from provision.kvm.render import kvm_section
from provision.spec import ClusterSpec

log = logging.getLogger("okdbench.kvm.power")

STALL_S = 60.0  # no state change for this long: the operation is stuck
POLL_S = 0.05
PROGRESS_EVERY_S = 10.0

# virDomainState numbers -> names (libvirt-python exposes them as VIR_DOMAIN_<NAME>).
STATE_NAMES = {0: "nostate", 1: "running", 2: "blocked", 3: "paused", 4: "shutdown", 5: "shutoff", 6: "crashed",
               7: "pmsuspended"}


class PowerError(UserError):
    """A hypervisor operation on one VM failed or stalled; one line naming the VM and the phase."""


def _text(exc: BaseException) -> str:
    msg = exc.get_error_message() if hasattr(exc, "get_error_message") else str(exc)
    return " ".join(str(msg).split())


@contextmanager
def domain(spec: ClusterSpec, vm: str, phase: str) -> Iterator:
    """The libvirt domain named `vm`; libvirt errors become one PowerError line."""
    libvirt = _quiet_libvirt()
    uri = kvm_section(spec).uri
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise PowerError(f"kvm {phase} of {vm}: cannot reach libvirt at {uri} ({_text(exc)}); start libvirtd or fix kvm.uri") from None
    try:
        try:
            dom = conn.lookupByName(vm)
        except libvirt.libvirtError:
            raise PowerError(f"kvm {phase} of {vm}: no such VM on {uri}; check the node-to-VM mapping "
                             "(resilience.vms in the spec)") from None
        try:
            yield dom
        except libvirt.libvirtError as exc:
            raise PowerError(f"kvm {phase} of {vm}: libvirt refused: {_text(exc)}") from None
    finally:
        conn.close()


def state_of(dom) -> str:
    return STATE_NAMES.get(dom.state()[0], "unknown")


def state(spec: ClusterSpec, vm: str) -> str:
    """'running', 'paused', 'shutoff', … as libvirt reports the VM."""
    with domain(spec, vm, "state") as dom:
        return state_of(dom)


def wait_state(dom, vm: str, phase: str, wanted: set[str], *, stall_s: float = STALL_S) -> float:
    """Poll until the VM is in one of `wanted`; seconds waited. Fails after stall_s without a change."""
    start = last_change = last_log = time.monotonic()
    seen = state_of(dom)
    while seen not in wanted:
        now = time.monotonic()
        if now - last_change > stall_s:
            raise PowerError(f"kvm {phase} of {vm}: still {seen} after {now - start:.0f} s with no change for "
                             f"{stall_s:.0f} s (wanted {'/'.join(sorted(wanted))}); the hypervisor is stuck or the guest ignores it")
        if now - last_log >= PROGRESS_EVERY_S:
            last_log = now
            log.info("kvm %s of %s: %s, %.0f s elapsed", phase, vm, seen, now - start)
        time.sleep(POLL_S)
        now_state = state_of(dom)
        if now_state != seen:
            seen, last_change = now_state, time.monotonic()
    return time.monotonic() - start


def _run(spec: ClusterSpec, vm: str, phase: str, act: Callable[[object], None], wanted: set[str] | None,
         skip_if: set[str] = frozenset(), *, stall_s: float = STALL_S) -> float:
    with domain(spec, vm, phase) as dom:
        before = state_of(dom)
        if before in skip_if:
            log.info("kvm %s of %s: already %s, nothing to do", phase, vm, before)
            return 0.0
        start = time.monotonic()
        act(dom)
        if wanted:
            wait_state(dom, vm, phase, wanted, stall_s=stall_s)
        elapsed = time.monotonic() - start
        log.info("kvm %s of %s: done in %.2f s (%s -> %s)", phase, vm, elapsed, before, state_of(dom))
        return elapsed


def power_off(spec: ClusterSpec, vm: str) -> float:
    """Hard power-off (virDomainDestroy: pulling the plug, no guest shutdown)."""
    return _run(spec, vm, "power-off", lambda d: d.destroy(), {"shutoff"}, {"shutoff"})


def power_on(spec: ClusterSpec, vm: str) -> float:
    return _run(spec, vm, "power-on", lambda d: d.create(), {"running"}, {"running", "paused"})


def pause(spec: ClusterSpec, vm: str) -> float:
    """Freeze: the vCPUs stop, memory and devices stay (virDomainSuspend)."""
    return _run(spec, vm, "pause", lambda d: d.suspend(), {"paused"}, {"paused"})


def resume(spec: ClusterSpec, vm: str) -> float:
    return _run(spec, vm, "resume", lambda d: d.resume(), {"running"}, {"running"})


def reset(spec: ClusterSpec, vm: str) -> float:
    """Hard reset (the reset button): the guest reboots without shutting down."""
    return _run(spec, vm, "reset", lambda d: d.reset(0), None)


def reboot(spec: ClusterSpec, vm: str) -> float:
    """Graceful reboot through the hypervisor (ACPI power button or guest agent, libvirt's choice).

    Returns once libvirt accepted the request: whether and when the guest comes back is what the
    cluster-side watch measures (a guest without an ACPI handler ignores it).
    """
    return _run(spec, vm, "reboot", lambda d: d.reboot(0), None)
