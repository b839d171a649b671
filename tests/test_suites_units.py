"""Pure parts of the suites: tool-output parsers, the soak state machine, image resolution, quantiles."""

from __future__ import annotations

import copy

import pytest

from suites.soak import SoakTracker
from suites.stats import quantile
from suites.test_network import parse_iperf3
from suites.test_storage import parse_fio
from suites.workloads import default_images, render, resolve_images
from tests.fakekube.programs import fio, iperf3
from tests.support._bounded_run import run_bounded


class _Cluster:
    @staticmethod
    def node_perf(node):
        return {"fsync_p99_ms": 7.5, "write_mbps": 410.0, "net_gbps": 24.0, "rtt_ms": 0.8}


def _pod(manifest: dict, node: str = "n1") -> dict:
    pod = {"spec": copy.deepcopy(manifest["spec"]["template"]["spec"] if manifest["kind"] == "Job" else manifest["spec"]),
           "status": {"podIP": "10.128.0.9"}}
    pod["spec"]["nodeName"] = node
    return pod


def test_fio_job_output_parses_to_fsync_p99_and_throughput():
    job = render("fio-job", name="f", namespace="n", node_hostname="n1", image="i", fsync_size="22m", seq_size="512m")
    out = fio(_Cluster(), _pod(job))
    import json

    fsync_ms, mbps = parse_fio(json.loads(out.log))
    assert fsync_ms == pytest.approx(7.5)
    assert mbps == pytest.approx(410.0, rel=1e-3)


def test_iperf3_client_output_parses_to_gbps_and_rtt():
    job = render("iperf3-client-job", name="c", namespace="n", node_hostname="n1", image="i", server_ip="10.128.0.5", seconds=10)
    import json

    gbps, rtt = parse_iperf3(json.loads(iperf3(_Cluster(), _pod(job)).log))
    assert gbps == pytest.approx(24.0 * 10 / 10.04, rel=1e-6)
    assert rtt == pytest.approx(0.8)
    with pytest.raises(ValueError, match="unable to connect"):
        parse_iperf3({"error": "unable to connect to server: Connection refused"})


def _node(ready: str, rv: str) -> dict:
    return {"metadata": {"name": "w1", "resourceVersion": rv}, "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def test_soak_tracker_counts_transitions_not_states():
    t = SoakTracker()
    t.node("ADDED", None, _node("False", "1"))  # NotReady at the start: a state, not a transition
    t.node("MODIFIED", _node("False", "1"), _node("True", "2"))
    t.node("MODIFIED", _node("True", "2"), _node("True", "3"))  # heartbeat
    t.node("MODIFIED", _node("True", "3"), _node("Unknown", "4"))
    assert t.node_notready == ["w1"]


def _pod_restarts(ns: str, n: int) -> dict:
    return {"metadata": {"name": "p", "namespace": ns}, "status": {"containerStatuses": [{"name": "c", "restartCount": n}]}}


def test_soak_tracker_counts_restart_increases_in_openshift_namespaces():
    t = SoakTracker()
    t.pod("MODIFIED", _pod_restarts("openshift-etcd", 3), _pod_restarts("openshift-etcd", 5))
    t.pod("ADDED", None, _pod_restarts("openshift-dns", 1))  # a pod born in the window that already restarted
    t.pod("MODIFIED", _pod_restarts("default", 0), _pod_restarts("default", 9))  # not an OKD pod
    assert dict(t.restarts) == {"openshift-etcd/p/c": 2, "openshift-dns/p/c": 1}


def test_images_defaults_env_and_option():
    defaults = default_images()
    assert set(defaults) == {"pause", "fio", "iperf3", "nodejs-builder", "nodejs-base", "web", "prober"}
    env = {"OKDBENCH_IMAGE_NODEJS_BUILDER": "mirror.example.com/nodejs:20"}
    images = resolve_images(["fio=mirror.example.com/etcd-perf:1"], environ=env)
    assert images["nodejs-builder"] == "mirror.example.com/nodejs:20"
    assert images["fio"] == "mirror.example.com/etcd-perf:1"
    assert images["pause"] == defaults["pause"]
    with pytest.raises(ValueError, match="unknown image name 'foi'"):
        resolve_images(["foi=x"], environ={})
    with pytest.raises(ValueError, match="is not NAME=REF"):
        resolve_images(["fio"], environ={})


def test_quantile_matches_numpy_linear():
    import numpy as np

    xs = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    for q in (0.0, 0.5, 0.95, 0.99, 1.0):
        assert quantile(xs, q) == pytest.approx(float(np.percentile(xs, q * 100)))


def test_bad_suite_option_is_one_line_before_any_work(tmp_path):
    import sys

    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    proc = run_bounded([sys.executable, "-m", "pytest", "suites/", "--platform=kvm", "--kubeconfig", str(kubeconfig),
                           "--results-dir", str(tmp_path / "r"), "--image", "foi=x", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, cwd=__import__("pathlib").Path(__file__).parents[1])
    assert proc.returncode != 0
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "--image: unknown image name 'foi'" in proc.stderr
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())  # no half-made run folder
