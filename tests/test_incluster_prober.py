"""The in-cluster prober: its log parser (pure), its Job template, and its script run for real
(sh, curl, date) against an HTTP server on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import ClassVar

import pytest

from suites.probe_log import MAX_LINE, parse
from suites.workloads import render

GOOD = ("okdbench-probe 1 1764800000123456789 0 200 0.004512\n"
        "okdbench-probe 1 1764800000323456789 28 000 2.001234\n"
        "okdbench-probe 1 1764800000523456789 0 503 0.010000\n"
        "okdbench-probe 1 1764800000723456789 7 000 0.000311\n"
        "okdbench-probe 1 1764800000923456789 0 302 0.003000\n")


def test_parse_good_lines():
    log = parse(GOOD)
    assert (log.skipped, log.truncated, log.messages) == (0, False, [])
    assert [(p.ok, p.detail) for p in log.probes] == [(True, "200"), (False, "Timeout"), (False, "503"),
                                                    (False, "ConnectFailed"), (True, "302")]
    assert log.probes[0].t == pytest.approx(1764800000.123456789)
    assert log.probes[1].latency_ms == pytest.approx(2001.234)


def test_parse_skips_and_counts_garbage_without_crashing():
    text = ("I1203 12:00:00 some runtime warning\n"
            "okdbench-prober: curl is not in the image\n"
            "okdbench-probe 1 1764800000123456789 0 200\n"              # a field short
            "okdbench-probe 2 1764800000123456789 0 200 0.1\n"          # a version this parser does not know
            "okdbench-probe 1 -5 0 200 0.1\n"                           # not an epoch
            "okdbench-probe 1 1764800000123456789 0 20x 0.1\n"
            "okdbench-probe 1 1764800000123456789 0 200 nan\n"
            "okdbench-probe 1 1764800000123456789 0 200 1e400\n"
            "okdbench-probe 1 0 0 200 0.1\n"
            "\n\r\n"
            + GOOD.splitlines(keepends=True)[0].replace("\n", "\r\n"))  # CRLF is fine
    log = parse(text)
    assert len(log.probes) == 1 and log.probes[0].ok
    assert log.skipped == 8 and log.messages == ["okdbench-prober: curl is not in the image"]


def test_parse_non_utf8_truncated_and_huge_lines():
    raw = (b"okdbench-probe 1 1764800000123456789 0 200 0.0045\xff\xfe\n"     # bytes that are not UTF-8
           + b"\x00\x80garbage\n"
           + b"okdbench-probe 1 " + b"9" * 100_000 + b" 0 200 0.1\n"           # a huge line
           + GOOD.encode()
           + b"okdbench-probe 1 1764800001123456789 0 2")                      # cut by limitBytes
    log = parse(raw)
    assert len(log.probes) == 5 and log.truncated
    assert log.skipped == 4
    assert parse("x" * (MAX_LINE + 1) + "\n").skipped == 1
    assert parse("").probes == [] and not parse("").truncated
    # Thousands of diagnostics: only the first few are kept.
    assert len(parse("okdbench-prober: oops\n" * 5000).messages) == 3


def _script_and_env(url: str, max_probes: int, interval_s: float = 0.02, timeout_s: float = 1.0) -> tuple[list[str], dict]:
    job = render("resilience-prober-job", name="p", namespace="ns", image="img", url=url,
                 interval_ns=int(interval_s * 1e9), timeout_s=timeout_s, max_probes=max_probes, deadline_s=60,
                 avoid_nodes=["w0"])
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    env["PATH"] = os.environ["PATH"]  # nothing else from this machine (no proxy settings)
    return container["command"], env


def test_job_template_avoids_the_targets_and_tolerates_masters():
    job = render("resilience-prober-job", name="p", namespace="ns", image="img", url="http://s.ns.svc:8080/",
                 interval_ns=200_000_000, timeout_s=2.0, max_probes=10, deadline_s=99, avoid_nodes=["w0", "m1"])
    spec = job["spec"]["template"]["spec"]
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term == {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["w0", "m1"]}]}
    assert {t["key"] for t in spec["tolerations"]} == {"node-role.kubernetes.io/master",
                                                       "node-role.kubernetes.io/control-plane"}
    assert job["spec"]["activeDeadlineSeconds"] == 99 and job["spec"]["backoffLimit"] == 0
    assert spec["restartPolicy"] == "Never"


class _Answers(BaseHTTPRequestHandler):
    codes: ClassVar[list[int]] = []

    def log_message(self, *_a) -> None:
        pass

    def do_GET(self) -> None:
        code = self.codes.pop(0) if self.codes else 200
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_the_script_runs_paced_bounded_and_its_output_parses():
    _Answers.codes = [200, 503, 200]
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        argv, env = _script_and_env(f"http://127.0.0.1:{srv.server_address[1]}/", max_probes=5)
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=120, check=False)
    finally:
        srv.shutdown()
        srv.server_close()
    assert proc.returncode == 0, proc.stderr
    log = parse(proc.stdout)
    assert (log.skipped, log.truncated) == (0, False)
    assert [p.detail for p in log.probes] == ["200", "503", "200", "200", "200"]  # stops at max_probes
    starts = [p.t for p in log.probes]
    assert all(b > a for a, b in pairwise(starts))


def test_the_script_records_refused_connections():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv, env = _script_and_env(f"http://127.0.0.1:{port}/", max_probes=2)
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0
    assert [(p.ok, p.detail) for p in parse(proc.stdout).probes] == [(False, "ConnectFailed")] * 2


def test_incluster_window_tolerates_a_node_clock_a_few_hundred_ms_behind():
    from suites.incluster_prober import CLOCK_SLACK_S, incluster_outcome
    from suites.prober import Probe
    from suites.resilience import Outcome

    out = Outcome("freeze", "w1", "vm1", t0=1000.0, t_end=1010.0)
    skew = -0.4  # the prober's node is behind this host: the first failures carry times before t0
    probes = [Probe(t=1000.0 + i * 0.1 + skew, latency_ms=5.0, ok=not 1 <= i <= 10, detail="200") for i in range(-30, 120)]
    inc = incluster_outcome(out, probes, 0.1, 3)
    assert inc is not None and inc.errors == 10  # none dropped by a hair
    assert inc.unavailable_s == pytest.approx(0.9 + 0.005)
    assert inc.requests == sum(1 for p in probes if 1000.0 - CLOCK_SLACK_S <= p.t <= 1010.0 + CLOCK_SLACK_S)
    assert incluster_outcome(out, [p for p in probes if p.t < 990.0], 0.1, 3) is None  # nothing in the window


def test_incluster_prober_runs_on_the_fake_and_says_when_it_cannot(fake_cluster):
    """The Job through the real client: its pod runs the script for real, its log is read with
    tailLines/limitBytes; a pod that cannot be scheduled is one line, not an error."""
    import time

    from suites.incluster_prober import InClusterProber
    from suites.kube import Kube
    from suites.resilience import Outcome
    from tests.fakekube import scenarios

    fc = fake_cluster
    fc.ensure_namespace("ns")
    kube = Kube(fc.kubeconfig)
    nodes = [n["metadata"]["name"] for n in fc.list("nodes")]

    def job(name: str, avoid: list[str]) -> dict:
        return render("resilience-prober-job", name=name, namespace="ns", image="img", url="http://web.ns.svc:8080/",
                      interval_ns=50_000_000, timeout_s=1.0, max_probes=1000, deadline_s=60, avoid_nodes=avoid)

    nowhere = InClusterProber(kube, "ns", job("nowhere", nodes), 1000)
    assert nowhere.start(1.0) == "job nowhere's pod not Running after 1 s"
    nowhere.stop()

    # An image that cannot be pulled is said at once, not after the workload timeout.
    def pull_fails() -> None:
        pod = fc.list("pods", "ns", "job-name=unpulled")[0]
        fc.patch("pods", pod["metadata"]["name"], lambda p: p.setdefault("status", {}).__setitem__(
            "containerStatuses", [{"name": "prober", "ready": False, "restartCount": 0,
                                   "state": {"waiting": {"reason": "ImagePullBackOff"}}}]), "ns")

    fc.before_request("GET", "/api/v1/namespaces/ns/pods", 1, lambda: fc.at(0.3, pull_fails))
    unpulled = InClusterProber(kube, "ns", job("unpulled", nodes), 1000)
    assert unpulled.start(600.0) == ("job unpulled's pod is stuck in ImagePullBackOff (image img; "
                                     "--image prober=REF sets another)")
    unpulled.stop()

    worker = scenarios.node_names(fc, "worker")[0]
    p = InClusterProber(kube, "ns", job("probe", [worker]), 1000)
    t0 = time.time()
    assert p.start(30.0) is None and p.node != worker
    seen, last_progress = 0, time.monotonic()
    while len(fc.service_network.log) < 3:  # no Service "web": every connection is refused
        if len(fc.service_network.log) > seen:
            seen, last_progress = len(fc.service_network.log), time.monotonic()
        ended = fc.processes.started and not fc.processes.alive()  # (it starts just after the pod turns Running)
        assert not ended and time.monotonic() - last_progress < 60, fc.logs
        time.sleep(0.05)
    inc, why = p.measure(Outcome("freeze", worker, "vm", t0=t0, t_end=time.time()), 0.05, 3)
    assert why == "" and inc is not None and inc.errors == inc.requests >= 3
    assert p.skipped == 0
    p.stop()
    assert fc.processes.alive() == [] and fc.list("pods", "ns", "job-name=probe") == []
    assert p.measure(Outcome("freeze", worker, "vm", t0=t0, t_end=time.time()), 0.05, 3)[1].startswith("log of ")
