"""Run one disruption of one node VM through the hypervisor and watch the cluster recover.

The VM is always handed back running (resume / power on) in a `finally`; when that fails the
outcome says so and the caller records it in run.json. Waits are bounded by the cluster's own
timers (the criterion's recover_s), never by the test's guess of how fast the machine is.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from provision import base
from suites.prober import Prober
from suites.resilience import Outcome, analyse
from suites.transitions import Recorder

log = logging.getLogger("okdbench.resilience")

POLL_S = 0.2


def _steady(recorder: Recorder, node: str, replicas: int) -> bool:
    return recorder.node_ready.get(node, True) and recorder.ready_pods() >= replicas


def _quiet(prober: Prober, since: float, quiet_s: float) -> bool:
    """No failed request for quiet_s, and at least one answer in that window."""
    now = time.time()
    if now - since < quiet_s:
        return False
    recent = [p for p in prober.snapshot() if p.t >= now - quiet_s]
    return bool(recent) and all(p.ok for p in recent)


def _act(kind: str, spec: Any, vm: str, node: str, recorder: Recorder, insecure: bool) -> tuple[float | None, Any]:
    """The hypervisor calls of one disruption; (migration seconds, Migration) for migrate, (None, HostFailure)
    for ha-restart, (None, None) otherwise."""
    cfg = spec.resilience
    if kind == "freeze":
        base.pause(spec, vm, insecure=insecure)
        log.info("resilience: %s frozen for %.1f s", vm, cfg.freeze_s)
        time.sleep(cfg.freeze_s)  # the disruption itself
        base.resume(spec, vm, insecure=insecure)
    elif kind == "reset":
        base.reset(spec, vm, insecure=insecure)
    elif kind == "reboot":
        base.reboot(spec, vm, insecure=insecure)
    elif kind == "power-off":
        base.power_off(spec, vm, insecure=insecure)
        # Off until the cluster noticed and ran the lost replica elsewhere (or its own timers ran out).
        # Counted off the node: its NotReady may arrive before its pods' Ready=False does.
        moved = recorder.wait(lambda: not recorder.node_ready.get(node, True) and recorder.ready_pods(off=node) >= cfg.replicas,
                              cfg.thresholds.recover_s)
        log.info("resilience: %s %s; powering it on", node,
                 "NotReady and its pods run elsewhere" if moved else f"not recovered within {cfg.thresholds.recover_s:.0f} s")
        base.power_on(spec, vm, insecure=insecure)
    elif kind == "migrate":
        opts = {"dest_stats_uri": cfg.migrate_stats_uri} if spec.platform == "kvm" and cfg.migrate_stats_uri else {}
        moved = base.migrate(spec, vm, cfg.migrate_to, insecure=insecure, **opts)
        return moved.duration_s, moved
    elif kind == "ha-restart":
        # The opt-in host failure: returns once vSphere HA runs the VM on another host.
        failed = base.ha_restart(spec, vm, cfg.ha_restart.host, cfg.ha_restart.how, insecure=insecure)
        return None, failed
    else:
        raise ValueError(f"unknown disruption {kind!r}")
    return None, None


def run_disruption(kind: str, spec: Any, vm: str, node: str, recorder: Recorder, prober: Prober, *,
                   insecure: bool = False) -> Outcome:
    cfg = spec.resilience
    ready_at_t0 = recorder.ready_pods()
    t0 = time.time()
    log.info("resilience: %s of %s (VM %s) starts", kind, node, vm)
    problems: list[str] = []
    migration_s, done, refused = None, None, False
    try:
        migration_s, done = _act(kind, spec, vm, node, recorder, insecure)
    except Exception as exc:  # the platform layer's one-line errors; the VM is restored below
        problems.append(f"{kind} of {node}: {exc}")
        refused = isinstance(exc, base.DisruptionRefused)
    finally:
        if kind != "migrate":  # a migrated VM runs on the destination, not on the spec's host
            try:
                # After a host failure, never power the VM on where it was: that host may be down.
                did = base.ha_restore(spec, vm, cfg.ha_restart.host, insecure=insecure) if kind == "ha-restart" \
                    else base.restore(spec, vm, insecure=insecure)
                if not did.startswith("nothing"):
                    log.info("resilience: VM %s %s", vm, did)
            except Exception as exc:
                problems.append(f"VM {vm} could not be restored ({exc}); restore it by hand")
    t_back = time.time()
    deadline = t0 + cfg.thresholds.recover_s + cfg.settle_s
    last_log = time.monotonic()
    recovered = False
    while time.time() < deadline:
        if _steady(recorder, node, cfg.replicas) and _quiet(prober, t_back, cfg.settle_s):
            recovered = True
            break
        if time.monotonic() - last_log > 10:
            last_log = time.monotonic()
            log.info("resilience: %s of %s: waiting for recovery (node %s, %d/%d pods Ready), %.0f s since t0", kind, node,
                     "Ready" if recorder.node_ready.get(node, True) else "NotReady", recorder.ready_pods(), cfg.replicas,
                     time.time() - t0)
        time.sleep(POLL_S)
    t_end = time.time()
    with recorder.changed:
        transitions = list(recorder.transitions)
    out = analyse(kind, node, vm, t0, t_end, prober.snapshot(), transitions, replicas=cfg.replicas,
                  ready_at_t0=ready_at_t0, interval_s=cfg.probe_interval_s)
    out.recovered = recovered
    out.migration_s = migration_s
    out.hypervisor_downtime_ms = getattr(done, "downtime_ms", None)
    out.restart_s = getattr(done, "restart_s", None)
    out.problems = problems
    if kind == "ha-restart" and not refused:  # refused: the host was never touched
        _host_back(spec, vm, done, out, insecure)
    log.info("resilience: %s of %s: detect %s s, unavailable %.1f s, recover %.1f s, %d/%d requests failed",
             kind, node, f"{out.detect_s:.1f}" if out.detect_s is not None else "-", out.unavailable_s, out.recover_s,
             out.errors, out.requests)
    return out


def _host_back(spec: Any, vm: str, failed: Any, out: Outcome, insecure: bool) -> None:
    """After the measurement (a host reboot takes minutes): the failed host back, the VM moved back to it.

    What okdbench cannot do (a shut-down host, a host that does not return) goes to run.json's
    warnings, not to the criterion: the host failure itself was asked for.
    """
    ha = spec.resilience.ha_restart
    if failed is not None:
        seen = f" (vCenter saw the host down after {failed.host_down_s:.1f} s)" if failed.host_down_s is not None else ""
        out.notes.append(f"HA restarted {vm} on {failed.new_host} {failed.restart_s:.1f} s after the {ha.how} of {ha.host}{seen}")
    try:
        log.info("resilience: %s", base.ha_host_back(spec, vm, ha.host, ha.how, insecure=insecure))
    except Exception as exc:
        out.warnings.append(f"{exc}")
