"""`pytest suites/` against a healthy scripted OKD cluster, run as a user runs it (subprocess).

One run with --repeat 2 and a short soak in which an etcd container restarts and every watch is
cut and answered with 410 Gone; the assertions read the results files only.
"""

from __future__ import annotations

import pytest

from tests.fakekube import NodePerf
from tests.fakekube.scenarios import node_names
from tests.support.fakekube import run_suites, started

OKD_CRITERIA = {"install", "nodes-ready", "csr", "operators", "etcd", "machine-config", "ingress", "registry",
                "stability", "builds", "pod-startup", "storage", "network", "api"}
PODS, BUILDS, REPEAT = 4, 1, 2


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    with started(tmp_path_factory.mktemp("fake-okd")) as fc:
        workers = node_names(fc, "worker")
        for i, name in enumerate(workers):
            fc.perf[name] = NodePerf(fsync_p99_ms=2.0 + i, write_mbps=200.0 + 50 * i, net_gbps=9.0 + i)
        etcd_pod = "etcd-" + node_names(fc, "master")[0]
        # The soak is the only client that watches events: its first watch starts the script.
        fc.on_first_watch("events", 0.4, lambda: fc.restart_container("openshift-etcd", etcd_pod))
        fc.on_first_watch("events", 0.9, lambda: fc.cut_watches(gone=True))
        run = run_suites(fc, tmp_path_factory.mktemp("results"), "--repeat", str(REPEAT), "--soak", "2s",
                         "--builds", str(BUILDS), "--pods", str(PODS), "--api-calls", "5", "--wait-ready", "5",
                         "--workload-timeout", "30")
        yield fc, run, workers


def test_every_okd_criterion_passes(healthy):
    fc, run, _ = healthy
    assert run.proc.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output
    crit = run.runs.criteria
    mine = crit[crit["criterion"].isin(OKD_CRITERIA)]
    assert set(mine["criterion"]) == OKD_CRITERIA
    assert set(mine["status"]) == {"passed"}, mine[mine["status"] != "passed"].to_string()
    # builds: one criterion row per strategy and repetition
    assert len(run.criteria("builds")) == 2 * REPEAT
    assert run.runs.runs[0].status == "complete"


def test_run_json_describes_the_cluster(healthy):
    _, run, _ = healthy
    info = run.runs.runs[0]
    assert info.okd_version == "4.8.0-0.nightly-2021-07-31-065602"
    assert info.kubernetes_version == "v1.29.4"
    assert {(n.role, n.count) for n in info.nodes} == {("master", 3), ("worker", 3)}
    assert info.insecure is False


def test_build_samples_come_from_status_stages(healthy):
    fc, run, workers = healthy
    stages = run.samples("build.stage.PushImage")
    assert len(stages) == BUILDS * 2 * REPEAT
    for stage, ms in fc.timings.build_stages_ms.items():
        values = run.samples(f"build.stage.{stage}")
        assert list(values["value"]) == [ms] * (BUILDS * 2 * REPEAT), stage
        assert set(values["unit"]) == {"ms"}
    durations = run.samples("build.duration")
    assert sorted(durations["repetition"]) == sorted([0, 0, 1, 1])
    assert {lab["strategy"] for lab in durations["labels"]} == {"Docker", "Source"}
    assert {lab["node"] for lab in durations["labels"]} <= set(workers)
    scripted = sum(fc.timings.build_stages_ms.values()) / 1000
    # status.duration is whole seconds on the cluster's clock; the build itself takes `scripted` s.
    assert all(v >= scripted - 1 for v in durations["value"])
    assert all(v >= scripted for v in run.samples("build.wall")["value"])
    # What was uploaded is the reference app, as a tar archive the builder can unpack.
    assert len(fc.binary_uploads) == BUILDS * 2 * REPEAT
    assert {tuple(m) for _, _, m in fc.binary_uploads} == {("Dockerfile", "package.json", "server.js")}


def test_pod_startup_per_pod_and_quantiles(healthy):
    fc, run, workers = healthy
    ready = run.samples("pod.startup.ready")
    assert len(ready) == PODS * REPEAT
    assert sorted(ready.groupby("repetition").size()) == [PODS, PODS]
    # Created -> Ready can't be faster than the scripted kubelet.
    assert (ready["value"] >= fc.timings.pod_ready_s * 1000).all()
    assert {lab["node"] for lab in ready["labels"]} == set(workers)  # spread over all workers
    for cond in ("scheduled", "initialized", "containers_ready", "ready"):
        for q in ("p50", "p95", "p99"):
            assert len(run.samples(f"pod.startup.{cond}.{q}")) == REPEAT
    p50, p99 = run.samples("pod.startup.ready.p50"), run.samples("pod.startup.ready.p99")
    assert (p50["value"].values <= p99["value"].values).all()


def test_storage_and_network_parse_the_tools_output(healthy):
    fc, run, workers = healthy
    fsync = run.samples("storage.fsync.p99")
    assert len(fsync) == len(workers) * REPEAT
    for _, row in fsync.iterrows():
        assert row["value"] == pytest.approx(fc.perf[row["labels"]["node"]].fsync_p99_ms, rel=1e-6)
    mbps = run.samples("storage.write.throughput")
    for _, row in mbps.iterrows():
        assert row["value"] == pytest.approx(fc.perf[row["labels"]["node"]].write_mbps, rel=1e-3)
        assert row["better"] == "higher"
    net = run.samples("network.throughput")
    assert len(net) == REPEAT
    for _, row in net.iterrows():
        # iperf3's receiver rate: the sender's bytes over the receiver's 10.04 s.
        assert row["value"] == pytest.approx(fc.perf[row["labels"]["src"]].net_gbps * 10 / 10.04, rel=1e-3)
    assert list(run.samples("network.rtt")["value"]) == [pytest.approx(0.25)] * REPEAT


def test_install_and_registry_samples_come_from_the_captured_objects(healthy):
    _, run, _ = healthy
    # history[-1] of the 4.8 AWS ClusterVersion: started 09:14:59, completed 09:45:28.
    assert list(run.samples("install.cluster_version")["value"]) == [1829.0]
    assert list(run.samples("registry.replicas")["value"]) == [2.0]


def test_api_and_etcd_and_ingress_samples(healthy):
    fc, run, _ = healthy
    for op in ("list_nodes", "create_configmap", "delete_configmap"):
        assert len(run.samples(f"api.{op}.p99")) == REPEAT
    fsync = run.samples("etcd.wal_fsync.p99")
    assert list(fsync["value"]) == [pytest.approx(4.2)] * 3  # one per master, from thanos-querier
    assert len(run.samples("ingress.console.latency")) == 1
    assert any(host == fc.console_host for _, host, _ in fc.router_log)


def test_soak_counts_the_restart_once_across_410(healthy):
    fc, run, _ = healthy
    value = lambda m: list(run.samples(m)["value"])  # noqa: E731
    assert value("stability.container_restarts") == [1]
    assert value("stability.node_notready_transitions") == [0]
    assert value("stability.operator_degradations") == [0]
    assert value("stability.watch_relists")[0] >= 3  # nodes, pods, COs (and events) re-listed after 410
    assert value("stability.window")[0] >= 2
    assert "etcd" in run.detail("stability")
    gone_watches = [r for r in fc.requests if r.watch and "resourceVersion=" in r.query]
    assert gone_watches


def test_requests_were_authenticated_and_verified(healthy):
    fc, run, _ = healthy
    assert fc.requests and not [r for r in fc.requests if r.status == 401]
    # The run never wrote the bearer token anywhere.
    for path in run.run_dir.rglob("*"):
        if path.is_file():
            assert fc.token not in path.read_bytes().decode(errors="replace"), path
