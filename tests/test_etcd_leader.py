"""etcd leadership around a disruption: the pure analysis on given series, and the same series
backfilled by promtool into Debian's real Prometheus and read back through the suite's query."""

from __future__ import annotations

import time

import pytest

from suites import etcd_prometheus
from suites.etcd_leader import (Leadership, MemberSeries, counter_changes, finding, leader_at, leadership,
                                resolution, scraped_after)
from suites.etcd_prometheus import LeaderWatch
from tests.support.prometheus import prometheus

SCRAPE_S = 30  # OpenShift's etcd ServiceMonitor interval
M0, M1, M2 = "etcd-master-0", "etcd-master-1", "etcd-master-2"
OFFSET = {M0: 0, M1: 10, M2: 20}  # each member is its own scrape target, scraped at its own phase
FREEZE_T0, RESET_T0 = 600.5, 900.5


def scenario(base: float = 0.0) -> MemberSeries:
    """20 minutes of a 3-member etcd, times relative to base.

    600.5: master-0 (the leader) frozen for 40 s: its scrapes fail until 660. The election drags:
    master-1 and master-2 see no leader at 610 / 620, master-1 leads from its scrape at 640 on;
    every member, master-0 included once back, counts one change (5 -> 6).
    900.5: master-2 (a follower) reset: absent until 980, its counter restarts at 1, it reports
    has_leader=0 once while it rejoins; the others keep their leader: no change.
    """
    out = MemberSeries()
    for m, off in OFFSET.items():
        for t in range(off, 1200, SCRAPE_S):
            if m == M0 and 600.5 < t < 660 or m == M2 and 900.5 < t < 980:
                continue  # scrape failed: the VM is frozen / rebooting
            lead = M0 if t < 640 else M1
            is_leader = 1.0 if m == lead else 0.0
            has_leader = 0.0 if m in (M1, M2) and t in (610, 620) or m == M2 and t == 980 else 1.0
            if m == M2 and t >= 980:
                seen = 1.0  # restarted: its first sight of the leader counts as one change
            else:
                seen = 5.0 if t < 640 else 6.0
            if m == M2 and t == 620:
                seen = 5.0
            for attr, v in (("is_leader", is_leader), ("has_leader", has_leader), ("changes_seen", seen)):
                getattr(out, attr).setdefault(m, []).append((base + t, v))
    return out


def test_a_frozen_leader_makes_one_change_seen_at_the_scrape_resolution():
    s = scenario()
    assert resolution(s) == SCRAPE_S
    got = leadership(s, FREEZE_T0, FREEZE_T0 + 200)
    assert got.changes == 1 and got.witnesses == 3
    assert got.leader_before == M0 and got.leader_after == M1
    assert got.elect_s == pytest.approx(640 - FREEZE_T0)  # master-1's first scrape as leader
    # master-0's last sample (600, has_leader=1) holds until its failed scrape at 630; from then
    # on the only current samples say 0, until master-1 reports a leader at 640.
    assert got.leaderless_s == pytest.approx(10.0)
    assert got.metrics() == {"leader_changes": (1.0, "count"), "leader_elect_s": (39.5, "s"),
                             "leaderless_s": (10.0, "s")}


def test_a_restarted_follower_is_no_witness_and_no_change():
    s = scenario()
    assert counter_changes(s.changes_seen[M2], RESET_T0, RESET_T0 + 200) is None  # 6 -> 1: restarted
    got = leadership(s, RESET_T0, RESET_T0 + 200)
    assert (got.changes, got.witnesses, got.elect_s) == (0, 2, None)
    assert got.leaderless_s == 0.0  # master-2 alone without a leader: the cluster had one
    assert got.metrics() == {"leader_changes": (0.0, "count"), "leaderless_s": (0.0, "s")}


def test_without_counters_the_leader_identity_counts_and_without_has_leader_no_leaderless():
    s = scenario()
    only_is = MemberSeries(is_leader=s.is_leader)
    got = leadership(only_is, FREEZE_T0, FREEZE_T0 + 200)
    assert (got.changes, got.witnesses, got.leaderless_s) == (1, 0, None)
    assert got.elect_s == pytest.approx(39.5)
    # No sample before t0: who led is unknown, so no election time either.
    late = leadership(MemberSeries(is_leader={M1: [(700.0, 1.0)]}), 650.0, 800.0)
    assert (late.leader_before, late.elect_s, late.changes) == (None, None, 1)
    assert leader_at(s.is_leader, 639.0) == M0 and leader_at(s.is_leader, 640.0) == M1


def test_scraped_after_tolerates_one_missing_member_and_findings_are_for_workers():
    s = scenario()
    assert not scraped_after(s, FREEZE_T0, 1190.0)  # nobody scraped after the data's end
    assert scraped_after(s, FREEZE_T0, 655.0)  # master-1 at 670 and master-2 at 680; master-0 may lag
    assert scraped_after(MemberSeries(), 0.0, 1.0)
    one = Leadership(1, 2.0, 0.0, 30.0, M0, M1, 2)
    assert finding(one, "master", "freeze of m", 0) is None
    assert finding(one, "worker", "freeze of w", 1) is None
    assert finding(one, "worker", "freeze of w", 0) == (
        "freeze of w: etcd changed leader 1 time(s) (limit 0 for a worker: no etcd member runs there)")
    assert finding(None, "worker", "x", 0) is None


def test_parse_is_defensive_and_names_what_is_wrong():
    assert etcd_prometheus.parse([{"metric": {"pod": "etcd-a"}, "value": [1, "1"]}]).empty()  # a vector: no samples
    with pytest.raises(ValueError, match="not a list"):
        etcd_prometheus.parse({"resultType": "matrix"})
    with pytest.raises(ValueError, match="etcd series of etcd-a: a sample is not"):
        etcd_prometheus.parse([{"metric": {"__name__": "etcd_server_is_leader", "pod": "etcd-a"}, "values": [[1]]}])
    with pytest.raises(ValueError, match="more than 192"):
        etcd_prometheus.parse([{}] * 193)
    assert etcd_prometheus.promql(10.0, 130.5) == ('{__name__=~"etcd_server_is_leader|etcd_server_has_leader|'
                                                  'etcd_server_leader_changes_seen_total"}[120500ms]')


def test_watch_waits_for_the_next_scrape_bounded_by_two_intervals():
    """Live: the last read ends before anyone was scraped after t_end: it polls until then, no longer."""
    s = scenario()
    clock = {"now": 1150.0}
    reads: list[float] = []

    def query(promql: str, at: float) -> list[dict]:
        reads.append(at)
        return [{"metric": {"__name__": name, "pod": m}, "values": [[t, str(v)] for t, v in pts if t <= at]}
                for name, attr in etcd_prometheus.SERIES.items() for m, pts in getattr(s, attr).items()]

    def sleep(d: float) -> None:
        clock["now"] += d

    notes: list[str] = []
    got = LeaderWatch(query, notes.append, clock=lambda: clock["now"], sleep=sleep).measure(1100.0, 1145.0)
    # master-0 scraped at 1140 and 1170, master-1 at 1150 (<= t_end? no: 1150 > 1145), master-2 at 1160.
    assert got is not None and got.changes == 0 and notes == []
    assert reads[0] == 1150.0 and reads[-1] >= 1160.0 and reads[-1] < 1170.0
    # Nobody ever scraped again (Prometheus stopped): the wait ends two intervals after t_end.
    reads.clear()
    clock["now"] = 1190.0
    LeaderWatch(query, notes.append, clock=lambda: clock["now"], sleep=sleep).measure(1180.0, 1190.0)
    assert reads[-1] >= 1190.0 + 2 * SCRAPE_S and len(reads) == 1 + 2 * SCRAPE_S / 5  # polled every 5 s at most


def test_no_prometheus_or_no_etcd_series_is_one_note():
    notes: list[str] = []

    def no_route():
        raise LookupError("route openshift-monitoring/thanos-querier not found")

    watch = LeaderWatch.open(no_route, notes.append)
    assert watch.measure(1.0, 2.0) is None and watch.measure(3.0, 4.0) is None
    assert notes == ["etcd leader not measured: Prometheus not reachable (route openshift-monitoring/thanos-querier "
                     "not found)"]
    notes.clear()
    empty = LeaderWatch(lambda q, at: [], notes.append)
    assert empty.measure(1.0, 2.0) is None and empty.measure(3.0, 4.0) is None
    assert notes == [etcd_prometheus.NO_SERIES]
    notes.clear()

    def refused(q, at):
        raise ConnectionRefusedError(111, "Connection refused")

    broken = LeaderWatch(refused, notes.append)
    assert broken.measure(1.0, 2.0) is None and broken.measure(3.0, 4.0) is None
    assert notes == ["etcd leader not measured: Prometheus query failed ([Errno 111] Connection refused)"]


def openmetrics(s: MemberSeries) -> str:
    lines = []
    for name, attr in etcd_prometheus.SERIES.items():
        lines.append(f"# TYPE {name} gauge")
        for m, pts in getattr(s, attr).items():
            lines += [f'{name}{{namespace="openshift-etcd",pod="{m}",job="etcd"}} {v:g} {t:.3f}' for t, v in pts]
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    base = (int(time.time()) // 3600 - 3) * 3600  # hours back: inside retention, outside the head block
    with prometheus(tmp_path_factory.mktemp("etcd-backfill"), openmetrics=openmetrics(scenario(base))) as prom:
        yield prom, base


def test_real_prometheus_returns_the_scraped_samples_and_the_same_leadership(backfilled):
    prom, base = backfilled
    want = scenario(base)
    t0 = base + FREEZE_T0
    got = etcd_prometheus.read(prom.query, t0 - etcd_prometheus.LEAD_S, t0 + 200)
    for attr in ("is_leader", "has_leader", "changes_seen"):
        assert getattr(got, attr) == {m: [p for p in pts if t0 - 120 < p[0] <= t0 + 200]
                                      for m, pts in getattr(want, attr).items()}, attr
    assert leadership(got, t0, t0 + 200) == leadership(want, t0, t0 + 200)
    assert leadership(got, t0, t0 + 200).elect_s == pytest.approx(39.5)
    # Through the watch: the window is long past, every member was scraped after it: no waiting.
    notes: list[str] = []
    watch = LeaderWatch(prom.query, notes.append, clock=lambda: base + RESET_T0 + 200,
                        sleep=lambda d: pytest.fail("waited for a scrape that had happened"))
    reset = watch.measure(base + RESET_T0, base + RESET_T0 + 90)
    assert (reset.changes, reset.witnesses, reset.leaderless_s, notes) == (0, 2, 0.0, [])
    # A window with no etcd series at all: one note.
    assert LeaderWatch(prom.query, notes.append).measure(base - 7200, base - 7000) is None
    assert notes == [etcd_prometheus.NO_SERIES]
