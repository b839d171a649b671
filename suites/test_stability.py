"""stability: over the --soak window, watch nodes, openshift-* pods, ClusterOperators and events;
count NotReady transitions, restarts, degradations and etcd leader changes. Watches resume after
disconnects and re-list after 410 Gone, so the window loses nothing and counts nothing twice."""

from __future__ import annotations

import logging
import time

import pytest

from suites.kube import Informer, path_for
from suites.routes import prometheus_query
from suites.soak import SoakTracker

log = logging.getLogger("okdbench.soak")


@pytest.mark.criterion("stability")
def test_stability(kube, okdbench_config, suite_options, record, note, fail_with_evidence):
    window = okdbench_config.soak_s
    if window <= 0:
        pytest.skip("no soak window: pass --soak DURATION (e.g. --soak 30m)")
    tracker = SoakTracker()
    watched = [(Informer(kube, path_for("v1", "nodes")), tracker.node),
               (Informer(kube, path_for("v1", "pods")), tracker.pod),
               (Informer(kube, path_for("v1", "events"), field_selector="type=Warning"), tracker.event)]
    openshift = kube.is_openshift()
    if openshift:
        watched.append((Informer(kube, path_for("config.openshift.io/v1", "clusteroperators")), tracker.operator))
    else:
        note("plain Kubernetes: no ClusterOperators to watch")
    for informer, _ in watched:
        informer.sync(None)  # the baseline: state at the start of the window counts nothing
    start = time.monotonic()
    deadline = start + window
    log.info("soak: watching for %.0fs", window)
    threads = [inf.run_in_thread(handler, until=deadline, initial=False) for inf, handler in watched]
    for t in threads:
        t.join(timeout=window + 120)
    errors = [str(e) for t in threads for e in t.errors]  # type: ignore[attr-defined]
    for inf, _ in watched:
        inf.stop()
    observed = time.monotonic() - start

    leader_changes = None
    if openshift:
        try:
            series = prometheus_query(kube, f"max(increase(etcd_server_leader_changes_seen_total[{max(60, int(window))}s]))",
                                      address=suite_options.ingress_address, insecure=okdbench_config.insecure)
            leader_changes = max((float(s["value"][1]) for s in series), default=0.0)
        except (LookupError, OSError, ValueError, KeyError) as exc:
            note(f"etcd leader changes not measured: Prometheus not reachable ({str(exc).splitlines()[0][:100]})")

    record("stability.window", observed, "s", better="higher")
    record("stability.node_notready_transitions", len(tracker.node_notready), "count")
    record("stability.container_restarts", sum(tracker.restarts.values()), "count")
    record("stability.operator_degradations", len(tracker.degradations), "count")
    record("stability.operator_unavailable", len(tracker.unavailable), "count")
    record("stability.warning_events", sum(tracker.warning_events.values()), "count")
    if leader_changes is not None:
        record("stability.etcd_leader_changes", leader_changes, "count")
    stats = [inf.stats for inf, _ in watched]
    record("stability.watch_relists", sum(s.relists for s in stats), "count")
    record("stability.watch_resumes", sum(s.resumes for s in stats), "count")
    if tracker.restarts:
        top = ", ".join(f"{k} x{v}" for k, v in tracker.restarts.most_common(3))
        note(f"restarts: {top}")
    if errors:
        fail_with_evidence(f"soak watch failed after {observed:.0f}s: {errors[0]}", ["nodes", "clusteroperators"])
    problems = []
    if tracker.node_notready:
        problems.append(f"{len(tracker.node_notready)} node NotReady transition(s): {', '.join(sorted(set(tracker.node_notready)))}")
    if tracker.degradations:
        problems.append(f"{len(tracker.degradations)} operator degradation(s): {', '.join(sorted(set(tracker.degradations)))}")
    if problems:
        objects = [f"node/{n}" for n in sorted(set(tracker.node_notready))] + \
                  [f"clusteroperator/{c}" for c in sorted(set(tracker.degradations))]
        fail_with_evidence(f"during the {observed:.0f}s soak: " + "; ".join(problems), objects)
