"""etcd: all members available; WAL fsync p99 < 10 ms and peer RTT p99 < 50 ms when Prometheus answers."""

from __future__ import annotations

import pytest

from suites.kube import condition, condition_is, path_for
from suites.routes import prometheus_query

FSYNC_P99_MAX_MS = 10.0
PEER_RTT_P99_MAX_MS = 50.0
QUERIES = {
    # The expressions the etcd dashboards and the OpenShift docs use, per member over 5 minutes.
    "etcd.wal_fsync.p99": ("histogram_quantile(0.99, sum by (pod, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket[5m])))",
                           FSYNC_P99_MAX_MS),
    "etcd.peer_rtt.p99": ("histogram_quantile(0.99, sum by (pod, le) (rate(etcd_network_peer_round_trip_time_seconds_bucket[5m])))",
                          PEER_RTT_P99_MAX_MS),
}


@pytest.mark.criterion("etcd")
def test_etcd(openshift, okdbench_config, suite_options, record, note, fail_with_evidence):
    etcd = openshift.get_or_none(path_for("operator.openshift.io/v1", "etcds", name="cluster"))
    if etcd is None:
        fail_with_evidence("etcd operator object 'cluster' not found", ["clusteroperator/etcd"])
    members = condition(etcd, "EtcdMembersAvailable") or {}
    note(members.get("message") or "")
    problems = []
    if not condition_is(etcd, "EtcdMembersAvailable"):
        problems.append(f"EtcdMembersAvailable={members.get('status', 'missing')} ({members.get('reason', '')}: {members.get('message', '')})")
    try:
        for metric, (query, limit) in QUERIES.items():
            series = prometheus_query(openshift, query, address=suite_options.ingress_address, insecure=okdbench_config.insecure)
            for s in series:
                value_ms = float(s["value"][1]) * 1000.0
                member = s.get("metric", {}).get("pod", "?")
                record(metric, value_ms, "ms", member=member)
                if value_ms > limit:
                    problems.append(f"{metric} {value_ms:.1f} ms on {member} > {limit:.0f} ms")
    except (LookupError, OSError, ValueError, KeyError) as exc:
        note(f"fsync/RTT not measured: Prometheus not reachable ({str(exc).splitlines()[0][:120]})")
    if problems:
        fail_with_evidence("; ".join(problems), ["etcds.operator.openshift.io/cluster", "clusteroperator/etcd"])
