"""Read the etcd members' leader series around one disruption from the cluster's Prometheus.

One instant query of a range selector per read returns the raw samples with the times they
were scraped (a range query would resample them on its step). The query function is the one
suites/routes.py builds for the thanos-querier route (bearer token, TLS verified).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

from plumbing.redact import first_line
from suites.etcd_leader import Leadership, MemberSeries, leadership, resolution, scraped_after

log = logging.getLogger("okdbench.resilience")

QueryFn = Callable[[str, float], list[dict]]  # (PromQL, evaluation time as Unix seconds) -> result
SERIES = {"etcd_server_is_leader": "is_leader", "etcd_server_has_leader": "has_leader",
          "etcd_server_leader_changes_seen_total": "changes_seen"}
SELECTOR = '{__name__=~"' + "|".join(SERIES) + '"}'
LEAD_S = 120.0  # samples before t0 tell who led and what the counters read (4 scrapes at OpenShift's 30 s)
MAX_WAIT_S = 120.0  # waiting for the scrape after the window: at most two intervals, and never longer than this
MAX_SERIES = 3 * 64  # members x series; more is not an etcd cluster
MAX_POINTS = 100_000
NO_SERIES = "etcd leader not measured: the cluster's Prometheus has no etcd_server_is_leader series"


def promql(start: float, end: float) -> str:
    return f"{SELECTOR}[{max(1, math.ceil((end - start) * 1000))}ms]"


def parse(result: object) -> MemberSeries:
    """Prometheus' matrix (list of {metric, values}) -> MemberSeries; members named by their pod
    (OpenShift's etcd-<node>), else instance. Entries without raw samples are ignored."""
    if not isinstance(result, list):
        raise ValueError(f"Prometheus answered {type(result).__name__}, not a list of series")
    if len(result) > MAX_SERIES:
        raise ValueError(f"Prometheus answered {len(result)} etcd series (more than {MAX_SERIES})")
    out = MemberSeries()
    total = 0
    for s in result:
        if not isinstance(s, dict) or not isinstance(s.get("values"), list):
            continue
        labels = s.get("metric") if isinstance(s.get("metric"), dict) else {}
        attr = SERIES.get(str(labels.get("__name__", "")))
        if attr is None:
            continue
        member = str(labels.get("pod") or labels.get("instance") or "?")
        total += len(s["values"])
        if total > MAX_POINTS:
            raise ValueError(f"Prometheus answered more than {MAX_POINTS} etcd samples")
        try:
            pts = [(float(t), float(v)) for t, v in s["values"]]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"etcd series of {member}: a sample is not [time, value] ({exc})") from None
        merged = getattr(out, attr).setdefault(member, [])
        merged.extend(p for p in pts if math.isfinite(p[1]))
        merged.sort()
    return out


def read(query: QueryFn, start: float, end: float) -> MemberSeries:
    return parse(query(promql(start, end), end))


class LeaderWatch:
    """Measures each disruption's etcd leadership; the first failure (no Prometheus, no etcd
    series) is one note and ends the measuring for the run: never a failure of the criterion."""

    def __init__(self, query: QueryFn | None, note: Callable[[str], None], *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.query, self.note, self.clock, self.sleep = query, note, clock, sleep

    @classmethod
    def open(cls, make_query: Callable[[], QueryFn], note: Callable[[str], None], **kw) -> "LeaderWatch":
        try:
            return cls(make_query(), note, **kw)
        except Exception as exc:  # noqa: BLE001 - no monitoring route, no token: a note, not a failure
            note(f"etcd leader not measured: Prometheus not reachable ({first_line(exc, 160)})")
            return cls(None, note, **kw)

    def _read(self, t0: float, end: float) -> MemberSeries | None:
        try:
            series = read(self.query, t0 - LEAD_S, end)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - HTTP errors, refused connections, odd answers alike
            self.note(f"etcd leader not measured: Prometheus query failed ({first_line(exc, 160)})")
            self.query = None
            return None
        if series.empty():
            self.note(NO_SERIES)
            self.query = None
            return None
        return series

    def measure(self, t0: float, t_end: float) -> Leadership | None:
        """Leadership over (t0, horizon]: the horizon is the read after Prometheus scraped past
        t_end, at most two scrape intervals after t_end (so a later event is not counted here)."""
        if self.query is None:
            return None
        now = min(self.clock(), t_end + MAX_WAIT_S)
        series = self._read(t0, now)
        if series is None:
            return None
        res = resolution(series) or 30.0
        deadline = t_end + min(2 * res, MAX_WAIT_S)
        now = min(now, deadline)
        if not scraped_after(series, t0, t_end) and now < deadline:
            log.info("resilience: waiting up to %.0f s for Prometheus to scrape etcd after the disruption", deadline - now)
        while not scraped_after(series, t0, t_end) and now < deadline:
            self.sleep(max(0.2, min(res / 4, 5.0)))
            now = min(self.clock(), deadline)
            series = self._read(t0, now)
            if series is None:
                return None
        out = leadership(series, t0, now, res)
        log.info("resilience: etcd: %d leader change(s)%s, scraped every %.1f s", out.changes,
                 f", new leader after {out.elect_s:.1f} s" if out.elect_s is not None else "", res)
        return out
