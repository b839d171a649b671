"""Whether etcd changed leader around one disruption, from its members' scraped samples (pure functions).

Input: the raw samples (epoch s, value) Prometheus scraped from each etcd member of
etcd_server_is_leader, etcd_server_has_leader and etcd_server_leader_changes_seen_total.
Everything here is at the scrape interval's resolution (OpenShift scrapes etcd every 30 s):
a new leader is seen at the first scrape that shows it, up to one interval after it was elected.

- changes: the most leader changes any member counted over (t0, horizon] (each member counts
  the changes it witnessed, so the maximum is the best lower bound). A member whose counter
  went down restarted: it counts its first sight of the current leader as a change, so it is
  no witness (unlike PromQL's increase(), which would add that 1). Without a witness, the
  number of times a different member reported is_leader=1.
- elect_s: t0 -> the first sample after t0 in which a member other than the leader at t0
  reports is_leader=1 (only when a change happened).
- leaderless_s: the time within (t0, horizon] when no member's current sample says
  has_leader=1 and at least one says 0. A sample stays current until the member's next one,
  or for one scrape interval when the next scrape failed (as Prometheus' staleness does).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

Points = list[tuple[float, float]]  # (epoch s, value), sorted by time


@dataclass
class MemberSeries:
    """Per etcd member (its pod), the samples of each of the three series."""

    is_leader: dict[str, Points] = field(default_factory=dict)
    has_leader: dict[str, Points] = field(default_factory=dict)
    changes_seen: dict[str, Points] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.is_leader or self.changes_seen)

    def all_points(self) -> list[Points]:
        return [*self.is_leader.values(), *self.has_leader.values(), *self.changes_seen.values()]


@dataclass
class Leadership:
    changes: int
    elect_s: float | None  # only when changes > 0 and a different member took over
    leaderless_s: float | None  # None without has_leader series
    resolution_s: float | None  # the scrape interval the samples show
    leader_before: str | None
    leader_after: str | None
    witnesses: int  # members whose counter covered the window without restarting

    def metrics(self) -> dict[str, tuple[float, str]]:
        """metric suffix -> (value, unit), only the measured ones."""
        out: dict[str, tuple[float, str]] = {"leader_changes": (float(self.changes), "count")}
        if self.changes and self.elect_s is not None:
            out["leader_elect_s"] = (self.elect_s, "s")
        if self.leaderless_s is not None:
            out["leaderless_s"] = (self.leaderless_s, "s")
        return out


def resolution(series: MemberSeries) -> float | None:
    """The scrape interval: the median spacing of consecutive samples of every series."""
    gaps = [b[0] - a[0] for pts in series.all_points() for a, b in zip(pts, pts[1:]) if b[0] > a[0]]
    return statistics.median(gaps) if gaps else None


def _last_at_or_before(points: Points, t: float) -> tuple[float, float] | None:
    found = None
    for p in points:
        if p[0] > t:
            break
        found = p
    return found


def counter_changes(points: Points, t0: float, horizon: float) -> int | None:
    """Changes one member counted over (t0, horizon]; None when it is no witness (no sample at or
    before t0, none after, or its counter went down: it restarted)."""
    base = _last_at_or_before(points, t0)
    after = [v for t, v in points if t0 < t <= horizon]
    if base is None or not after:
        return None
    prev = base[1]
    for v in after:
        if v < prev:
            return None
        prev = v
    return int(round(after[-1] - base[1]))


def leader_at(is_leader: dict[str, Points], t: float) -> str | None:
    """The member whose latest sample at or before t says is_leader=1 (the most recent such sample wins)."""
    best: tuple[float, str] | None = None
    for member, pts in is_leader.items():
        last = _last_at_or_before(pts, t)
        if last is not None and last[1] == 1 and (best is None or last[0] > best[0]):
            best = (last[0], member)
    return best[1] if best else None


def _current_intervals(points: Points, res: float, until: float) -> list[tuple[float, float, float]]:
    """(start, end, value): each sample holds until the next, or one interval when the next scrape failed."""
    out = []
    for i, (t, v) in enumerate(points):
        nxt = points[i + 1][0] if i + 1 < len(points) else None
        end = nxt if nxt is not None and nxt - t <= 1.5 * res else t + res  # 1.5: scrape jitter, not a missed scrape
        out.append((t, min(end, max(until, t)), v))
    return out


def leaderless_time(has_leader: dict[str, Points], t0: float, horizon: float, res: float) -> float:
    intervals = [iv for pts in has_leader.values() for iv in _current_intervals(pts, res, horizon)]
    cuts = sorted({t0, horizon, *(x for s, e, _ in intervals for x in (s, e) if t0 < x < horizon)})
    total = 0.0
    for a, b in zip(cuts, cuts[1:]):
        mid = (a + b) / 2
        values = [v for s, e, v in intervals if s <= mid < e]
        if values and not any(v == 1 for v in values):
            total += b - a
    return total


def leadership(series: MemberSeries, t0: float, horizon: float, res: float | None = None) -> Leadership:
    """What etcd's leadership did over (t0, horizon], from samples that start before t0."""
    res = res or resolution(series) or 30.0
    before = leader_at(series.is_leader, t0)
    counted = [c for c in (counter_changes(p, t0, horizon) for p in series.changes_seen.values()) if c is not None]
    samples = sorted((t, m) for m, pts in series.is_leader.items() for t, v in pts if t0 < t <= horizon and v == 1)
    elect_t, current, switches = None, before, 0
    for t, m in samples:
        if m != current:
            switches += 1
            current = m
        if elect_t is None and before is not None and m != before:
            elect_t = t
    changes = max(counted) if counted else switches
    return Leadership(
        changes=changes,
        elect_s=elect_t - t0 if changes and elect_t is not None else None,
        leaderless_s=leaderless_time(series.has_leader, t0, horizon, res) if series.has_leader else None,
        resolution_s=resolution(series),
        leader_before=before,
        leader_after=leader_at(series.is_leader, horizon),
        witnesses=len(counted),
    )


def scraped_after(series: MemberSeries, t0: float, t_end: float) -> bool:
    """Has Prometheus scraped, after t_end, every member that reported before t0 but one (the
    disrupted master's member may still be starting)?"""
    members = [m for m, pts in series.is_leader.items() if pts and pts[0][0] <= t0]
    fresh = [m for m in members if series.is_leader[m][-1][0] > t_end]
    return len(fresh) >= max(1, len(members) - 1) if members else True


def finding(leader: Leadership | None, role: str, label: str, limit: int) -> str | None:
    """A worker disruption's leader changes beyond the limit: no etcd member runs on a worker."""
    if leader is None or role != "worker" or leader.changes <= limit:
        return None
    return f"{label}: etcd changed leader {leader.changes} time(s) (limit {limit} for a worker: no etcd member runs there)"
