"""What one disruption cost, computed from the probes and the watch transitions (pure functions).

Times are wall-clock epoch seconds from one machine (the okdbench host): t0 is when the
hypervisor call was issued. Definitions (the README's Resilience section repeats them):
- detect_s: t0 -> the disrupted node's first NotReady (absent when the node never went NotReady).
- unavailable_s: first failed request -> last failed request (+ one interval): the window in which
  clients saw failures, partial (some requests still succeed) or total. 0 when none failed.
- recover_s: t0 -> the last moment anything was still wrong: a failed request, fewer Ready pods
  than replicas, or the node NotReady. 0 when nothing ever went wrong.
- errors: failed requests from t0 on. p99_ms: 99th percentile latency of all requests from t0 on.
- downtime_ms: the largest gap between two successful requests, minus the probe interval.
- node_flaps: the disrupted node's Ready -> NotReady transitions in [t0, t_end] (0: it never went
  NotReady); pod_flaps: the same for the workload's pods (a pod deleted is no flap).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from suites.etcd_leader import Leadership, finding
from suites.prober import Probe
from suites.stats import quantile
from suites.transitions import Transition


@dataclass
class Outcome:
    disruption: str
    node: str
    vm: str
    t0: float
    t_end: float = 0.0  # end of the observation window
    detect_s: float | None = None
    unavailable_s: float = 0.0
    recover_s: float = 0.0
    errors: int = 0
    requests: int = 0
    p99_ms: float | None = None
    downtime_ms: float = 0.0
    migration_s: float | None = None
    hypervisor_downtime_ms: float | None = None
    node_flaps: int = 0
    pod_flaps: int = 0
    role: str = "worker"
    leader: Leadership | None = None  # etcd's leadership over the window, when Prometheus told
    restart_s: float | None = None  # ha-restart: host failure -> VM running on another host (vCenter's view)
    recovered: bool = True
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line each, for the criterion's detail
    warnings: list[str] = field(default_factory=list)  # for run.json's warnings, not a failure (a host left down)

    def metrics(self) -> dict[str, tuple[float, str]]:
        """metric suffix -> (value, unit), only the measured ones."""
        out: dict[str, tuple[float, str]] = {"unavailable_s": (self.unavailable_s, "s"), "errors": (self.errors, "count"),
                                             "downtime_ms": (self.downtime_ms, "ms"),
                                             "node_flaps": (self.node_flaps, "count"), "pod_flaps": (self.pod_flaps, "count")}
        if self.recovered:
            out["recover_s"] = (self.recover_s, "s")
        if self.detect_s is not None:
            out["detect_s"] = (self.detect_s, "s")
        if self.p99_ms is not None:
            out["p99_ms"] = (self.p99_ms, "ms")
        if self.migration_s is not None:
            out["migration_s"] = (self.migration_s, "s")
        if self.restart_s is not None:
            out["restart_s"] = (self.restart_s, "s")
        return out


def flaps(transitions: list[Transition], kind: str, t0: float, t_end: float, name: str | None = None) -> int:
    """Ready -> NotReady transitions of one node (or of every pod when name is None) in [t0, t_end]."""
    return sum(1 for t in transitions if t.kind == kind and t.state == "NotReady" and t0 <= t.t <= t_end
               and (name is None or t.name == name))


def analyse(disruption: str, node: str, vm: str, t0: float, t_end: float, probes: list[Probe],
            transitions: list[Transition], *, replicas: int, ready_at_t0: int, interval_s: float) -> Outcome:
    out = Outcome(disruption=disruption, node=node, vm=vm, t0=t0, t_end=t_end)
    window = [p for p in probes if t0 <= p.t <= t_end]
    out.requests = len(window)
    failed = [p for p in window if not p.ok]
    out.errors = len(failed)
    if window:
        out.p99_ms = quantile([p.latency_ms for p in window], 0.99)
    if failed:
        out.unavailable_s = failed[-1].t + failed[-1].latency_ms / 1000.0 - failed[0].t
        out.unavailable_s = max(out.unavailable_s, interval_s)
    ok_ends = [t0] + [p.t + p.latency_ms / 1000.0 for p in window if p.ok]
    if window and not window[-1].ok:
        ok_ends.append(t_end)
    gaps = [b - a for a, b in zip(ok_ends, ok_ends[1:])]
    out.downtime_ms = max(0.0, (max(gaps, default=0.0) - interval_s) * 1000.0) if failed else 0.0

    events = sorted((t for t in transitions if t.t >= t0), key=lambda t: t.t)
    not_ready = next((t for t in events if t.kind == "node" and t.name == node and t.state == "NotReady"), None)
    if not_ready is not None:
        out.detect_s = not_ready.t - t0
    last_bad = t0
    if failed:
        last_bad = max(last_bad, failed[-1].t + failed[-1].latency_ms / 1000.0)
    node_ok, ready = True, ready_at_t0
    pods: dict[str, bool] = {}
    for tr in events:
        if tr.kind == "node" and tr.name == node:
            if not node_ok or tr.state == "NotReady":
                last_bad = max(last_bad, tr.t)
            node_ok = tr.state == "Ready"
        elif tr.kind == "pod":
            # Unseen so far: a pod present at t0 (all were Ready then), or a new one turning Ready.
            was = pods.get(tr.name, tr.state != "Ready")
            now = tr.state == "Ready"
            if was != now:
                ready += 1 if now else -1
            pods[tr.name] = now
            if ready < replicas or (now and was != now and ready - 1 < replicas):  # short, or the recovery
                last_bad = max(last_bad, tr.t)
    out.recover_s = last_bad - t0
    out.node_flaps = flaps(transitions, "node", t0, t_end, node)
    out.pod_flaps = flaps(transitions, "pod", t0, t_end)
    return out


def max_probes(cfg, events: int) -> int:
    """Both probers' bound (cfg: provision.spec.Resilience): each event's longest observation
    (recover_s + settle_s + freeze_s) + 60 s, at the probe pace."""
    return int(events * (cfg.thresholds.recover_s + cfg.settle_s + cfg.freeze_s + 60) / cfg.probe_interval_s)


def problems(out: Outcome, thresholds) -> list[str]:
    """Why this outcome fails the criterion (thresholds: provision.spec.ResilienceThresholds)."""
    found = list(out.problems)
    label = f"{out.disruption} of {out.node}"
    if not out.recovered:
        found.append(f"{label}: not recovered")
    leader = finding(out.leader, out.role, label, thresholds.worker_leader_changes)
    if leader:
        found.append(leader)
    if out.disruption == "migrate":
        if out.errors > thresholds.migration_errors:
            found.append(f"{label}: {out.errors} failed request(s) during live migration (limit {thresholds.migration_errors})")
        if out.downtime_ms > thresholds.migration_downtime_ms:
            found.append(f"{label}: {out.downtime_ms:.0f} ms without an answer (limit {thresholds.migration_downtime_ms:.0f} ms)")
        return found
    if out.restart_s is not None and out.restart_s > thresholds.ha_restart_s:
        found.append(f"{label}: vSphere HA ran the VM again after {out.restart_s:.0f} s (limit {thresholds.ha_restart_s:.0f} s)")
    if out.unavailable_s > thresholds.unavailable_s:
        found.append(f"{label}: clients saw failures for {out.unavailable_s:.1f} s (limit {thresholds.unavailable_s:.0f} s)")
    if out.recovered and out.recover_s > thresholds.recover_s:
        found.append(f"{label}: recovered after {out.recover_s:.0f} s (limit {thresholds.recover_s:.0f} s)")
    return found


def vm_for_node(spec, node: str) -> str | None:
    """The VM behind a node: resilience.vms, else the spec machine whose hostname or name it carries."""
    if node in spec.resilience.vms:
        return spec.resilience.vms[node]
    short = node.split(".")[0]
    for m in spec.machines():
        if node == m.hostname or short in (m.name, f"{spec.name}-{m.name}"):
            return f"{spec.name}-{m.name}"
    return None
