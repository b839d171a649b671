"""`pytest suites/` against a cluster in trouble: every failing criterion says why in one line,
the rogue CSR is reported as a security finding, and with `oc` on PATH the evidence is gathered
into the run folder (redacted) and the criterion detail says where."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.fakekube import scenarios
from tests.fakekube.cluster import FakeCluster
from tests.support.fakekube import run_suites


@pytest.fixture(scope="module")
def degraded(tmp_path_factory):
    fc = FakeCluster(tmp_path_factory.mktemp("fake-degraded")).start()
    try:
        scenarios.degraded_okd(fc)
        worker = scenarios.node_names(fc, "worker")[1]

        def trouble_while_disconnected() -> None:
            # Every watch is cut and must re-list (410); the changes land in that gap, so only the
            # re-list diff can see them: each must be counted exactly once.
            fc.cut_watches(gone=True)
            fc.set_node_ready(worker, False)
            fc.set_condition("clusteroperators", "dns", "Degraded", "True", "DNSDegraded", "scripted")

        fc.on_first_watch("events", 0.5, trouble_while_disconnected)
        run = run_suites(fc, tmp_path_factory.mktemp("results"), "--soak", "2s", "--builds", "1", "--pods", "3",
                         "--api-calls", "3", "--wait-ready", "1", "--workload-timeout", "30", oc=True)
        yield fc, run, worker
    finally:
        fc.stop()


def test_exit_code_and_no_traceback(degraded):
    _, run, _ = degraded
    assert run.proc.returncode == 1, run.output[-3000:]
    assert "Traceback" not in run.output


@pytest.mark.parametrize("criterion, words", [
    ("install", ["4.14.1", "Failing=True", "Progressing=True", "history[0] 4.14.1 is Partial"]),
    ("operators", ["etcd: Degraded=True", "kube-apiserver", "control-plane-machine-set: Available=False"]),
    ("machine-config", ["pool worker", "Degraded"]),
    ("registry", ["Removed", "UPI"]),
    ("csr", ["SECURITY", "csr-rogue", "system:serviceaccount:default:builder", "pending", "csr-pending"]),
    ("etcd", ["etcd.wal_fsync.p99 25.0 ms", "> 10 ms"]),
    ("ingress", ["HTTP 503"]),
    ("stability", ["1 node NotReady transition", "1 operator degradation(s): dns"]),
])
def test_failed_criteria_say_why(degraded, criterion, words):
    _, run, _ = degraded
    assert run.status(criterion) == ["failed"], run.detail(criterion)
    detail = run.detail(criterion)
    assert "\n" not in detail
    for w in words:
        assert w in detail, (w, detail)


def test_failed_docker_build_fails_the_builds_criterion(degraded):
    _, run, _ = degraded
    rows = run.criteria("builds")
    assert sorted(rows["status"]) == ["failed", "passed"]
    assert "Docker builds failed" in run.detail("builds") and "DockerBuildFailed" in run.detail("builds")
    # The failed build is a failed criterion, not a sample; the S2I build still measured.
    assert {lab["strategy"] for lab in run.samples("build.duration")["labels"]} == {"Source"}


def test_rogue_csr_is_counted(degraded):
    _, run, _ = degraded
    assert list(run.samples("csr.approved_rule_violations")["value"]) == [1]
    assert list(run.samples("csr.pending")["value"]) == [1]


def test_soak_counts_changes_made_during_the_gap_exactly_once(degraded):
    _, run, worker = degraded
    value = lambda m: list(run.samples(m)["value"])  # noqa: E731
    assert value("stability.node_notready_transitions") == [1]
    assert value("stability.operator_degradations") == [1]
    assert value("stability.etcd_leader_changes") == [2]
    assert worker in run.detail("stability")


def test_nodes_and_workloads_still_pass(degraded):
    _, run, _ = degraded
    for name in ("nodes-ready", "pod-startup", "storage", "network", "api"):
        assert run.status(name) == ["passed"], (name, run.detail(name))


def test_must_gather_lands_in_the_run_folder_redacted(degraded):
    fc, run, _ = degraded
    detail = run.detail("operators")
    where = re.search(r"must-gather: ([^;\s]+)", detail).group(1)
    assert Path(where).is_relative_to(run.run_dir)
    gathered = Path(where) / "cluster-scoped-resources" / "config.openshift.io" / "clusteroperators" / "etcd.yaml"
    assert gathered.is_file()
    assert "EtcdMembers_UnhealthyMembers" in gathered.read_text()
    for name in ("install", "csr", "machine-config", "registry", "stability"):
        assert "must-gather: " in run.detail(name), name
    for path in run.run_dir.rglob("*"):
        if path.is_file():
            assert fc.token not in path.read_bytes().decode(errors="replace"), path


def test_stuck_trouble_is_not_waited_for(tmp_path):
    # A pending CSR from long ago and a node NotReady since long ago: stuck, not settling. The
    # criteria decide from the first list and never open a watch, whatever --wait-ready says.
    from tests.fakekube.controllers import set_condition

    fc = FakeCluster(tmp_path / "fake").start()
    try:
        scenarios.healthy_okd(fc, ready_after_s=None)
        old = "2021-08-03T09:00:00Z"
        stale = scenarios.pending_csr(fc, name="csr-stale")
        stale["metadata"]["creationTimestamp"] = old
        fc.store.delete(fc.res("certificatesigningrequests"), None, "csr-stale")
        fc.store.create(fc.res("certificatesigningrequests"), None, stale)
        worker = scenarios.node_names(fc, "worker")[0]

        def dead(node: dict) -> None:
            set_condition(node, "Ready", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
            for c in node["status"]["conditions"]:
                if c["type"] == "Ready":
                    c["lastTransitionTime"] = old

        fc.patch("nodes", worker, dead)
        # The scenario's own late CSR is approved 0.6 s after start: let that settle first.
        for _ in range(200):
            late = [c for c in fc.list("certificatesigningrequests") if c["metadata"]["name"] == "csr-late1"]
            if late and late[0].get("status", {}).get("conditions"):
                break
            time.sleep(0.05)
        run = run_suites(fc, tmp_path / "results", "suites/test_csr.py", "suites/test_nodes.py", "--wait-ready", "600")
    finally:
        fc.stop()
    assert run.status("csr") == ["failed"] and "csr-stale" in run.detail("csr")
    assert run.status("nodes-ready") == ["failed"] and worker in run.detail("nodes-ready")
    assert not [r for r in fc.requests if r.watch]
    # No `oc` on PATH: the reason alone, no must-gather promised.
    assert "must-gather" not in run.detail("csr") + run.detail("nodes-ready")
    assert not (run.run_dir / "must-gather").exists()


def test_full_must_gather_goes_through_openshift_client(fake_cluster, tmp_path, monkeypatch):
    from suites import mustgather
    from tests.support.fakekube import FAKEBIN

    monkeypatch.setenv("PATH", f"{FAKEBIN}:{__import__('os').environ['PATH']}")
    where = mustgather.collect(fake_cluster.kubeconfig, tmp_path, "operators", ["clusteroperator/etcd"], mode="full")
    full = Path(where)
    assert full == tmp_path / "must-gather" / "operators"
    assert (full / "cluster-scoped-resources" / "config.openshift.io" / "clusteroperators" / "etcd.yaml").is_file()
    assert "oc adm must-gather" in (full / "oc-result.txt").read_text()
    assert mustgather.collect(fake_cluster.kubeconfig, tmp_path, "x", [], mode="off") is None
