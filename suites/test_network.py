"""network: pod-to-pod TCP throughput and RTT between two workers (iperf3 server pod + client Job)."""

from __future__ import annotations

import secrets

import pytest

from suites.jobs import json_output, wait_job
from suites.kube import KubeError, condition_is, path_for, wait_for
from suites.workers import hostname, schedulable_workers
from suites.workloads import render

SECONDS = 10


def parse_iperf3(report: dict) -> tuple[float, float]:
    """(received Gbit/s, mean RTT ms) from `iperf3 -J` output."""
    if report.get("error"):
        raise ValueError(f"iperf3: {report['error']}")
    end = report["end"]
    gbps = end["sum_received"]["bits_per_second"] / 1e9
    rtts = [s["sender"]["mean_rtt"] for s in end.get("streams", []) if "mean_rtt" in s.get("sender", {})]
    return gbps, (sum(rtts) / len(rtts) / 1000.0 if rtts else float("nan"))  # mean_rtt is in µs


@pytest.mark.benchmark
@pytest.mark.criterion("network")
def test_network(kube, namespace, suite_options, record, note, fail_with_evidence):
    workers = schedulable_workers(kube)
    if len(workers) < 2:
        pytest.skip(f"needs two Ready, schedulable workers; found {len(workers)}")
    src, dst = workers[0], workers[1]
    run = secrets.token_hex(2)
    pods_path = path_for("v1", "pods", namespace)
    server = f"okdbench-iperf3-server-{run}"
    kube.create(pods_path, render("iperf3-server", name=server, namespace=namespace, node_hostname=hostname(dst),
                                  image=suite_options.images["iperf3"]))
    try:
        ready = wait_for(kube, pods_path, lambda p: condition_is(p, "Ready") and bool((p.get("status") or {}).get("podIP")),
                         suite_options.workload_timeout, field_selector=f"metadata.name={server}")
        if ready is None:
            fail_with_evidence(f"iperf3 server pod not Ready within {suite_options.workload_timeout:.0f}s", [f"ns/{namespace}"])
        client = f"okdbench-iperf3-client-{run}"
        kube.create(path_for("batch/v1", "jobs", namespace),
                    render("iperf3-client-job", name=client, namespace=namespace, node_hostname=hostname(src),
                           image=suite_options.images["iperf3"], server_ip=ready["status"]["podIP"], seconds=SECONDS))
        out = wait_job(kube, namespace, client, suite_options.workload_timeout + SECONDS)
        if not out.succeeded:
            fail_with_evidence(out.reason, [f"ns/{namespace}"])
        try:
            gbps, rtt_ms = parse_iperf3(json_output(out))
        except (ValueError, KeyError, TypeError) as exc:
            fail_with_evidence(f"unreadable iperf3 output ({type(exc).__name__}: {exc})", [f"ns/{namespace}"])
        labels = {"src": src["metadata"]["name"], "dst": dst["metadata"]["name"]}
        record("network.throughput", gbps, "Gbit/s", better="higher", **labels)
        if rtt_ms == rtt_ms:  # not NaN: RTT is reported on Linux senders only
            record("network.rtt", rtt_ms, "ms", **labels)
        note(f"{gbps:.2f} Gbit/s {labels['src']} -> {labels['dst']}")
    finally:
        try:
            kube.delete(f"{pods_path}/{server}", gracePeriodSeconds=0)
        except KubeError:
            pass
