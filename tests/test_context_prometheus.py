"""Guest-side conditions against Debian's real Prometheus: exact values from backfilled series, and a
suites run whose thanos-querier route (TLS verified, bearer token) reaches a live Prometheus that
scrapes node-exporter on this machine's /proc."""

from __future__ import annotations

import json
import math
import time

import pandas as pd
import pytest

from reports import conditions
from suites.context import prometheus as guest
from suites.context.session import NO_HYPERVISOR
from tests.support.fakekube import run_suites, started
from tests.support.prometheus import node_exporter, prometheus, wait_for_series

STEP_S = 15
NS = "okdbench-ab12cd"


def openmetrics(base: int, points: int = 41) -> str:
    """node-a: 9 % steal on each of 2 CPUs, swapping 3 pages/s, memory dipping to 3 of 8 GB once;
    node-b: 1 % steal, no swap. Benchmark pods on node-a throttled in 5 of 20 CFS periods per second."""
    fams: dict[str, list[str]] = {}

    def add(name: str, labels: str, fn) -> None:
        fams.setdefault(name, []).extend(f"{name}{{{labels}}} {fn(i * STEP_S)} {base + i * STEP_S}" for i in range(points))

    for node, steal in (("node-a", 0.09), ("node-b", 0.01)):
        for cpu in ("0", "1"):
            add("node_cpu_seconds_total", f'instance="{node}",cpu="{cpu}",mode="steal"', lambda t, s=steal: round(s * t, 6))
            add("node_cpu_seconds_total", f'instance="{node}",cpu="{cpu}",mode="idle"', lambda t: 0.5 * t)
        add("node_load1", f'instance="{node}"', lambda t: 1.0)
        add("node_memory_MemTotal_bytes", f'instance="{node}"', lambda t: 8e9)
        dip = node == "node-a"
        add("node_memory_MemAvailable_bytes", f'instance="{node}"', lambda t, d=dip: 3e9 if d and t == 300 else 4e9)
        add("node_vmstat_pswpin", f'instance="{node}"', lambda t, d=dip: 2 * t if d else 0)
        add("node_vmstat_pswpout", f'instance="{node}"', lambda t, d=dip: 1 * t if d else 0)
    add("container_cpu_cfs_throttled_periods_total", f'namespace="{NS}",node="node-a",pod="p"', lambda t: 5 * t)
    add("container_cpu_cfs_periods_total", f'namespace="{NS}",node="node-a",pod="p"', lambda t: 20 * t)
    text = "".join(f"# TYPE {name} gauge\n" + "\n".join(lines) + "\n" for name, lines in fams.items())
    return text + "# EOF\n"


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    base = (int(time.time()) // 3600 - 3) * 3600  # hours back: inside retention, outside the head block
    workdir = tmp_path_factory.mktemp("prom-backfill")
    with prometheus(workdir, openmetrics=openmetrics(base)) as prom:
        yield prom, base


def test_promql_gives_exact_conditions_over_a_historic_window(backfilled):
    prom, base = backfilled
    got = guest.readings(prom.query, base + 120, base + 420, namespace=NS)
    by = {(r.metric, r.node): r for r in got}
    assert by[("context.guest.cpu.steal", "node-a")].value == pytest.approx(0.09, rel=1e-9)
    assert by[("context.guest.cpu.steal", "node-b")].value == pytest.approx(0.01, rel=1e-9)
    assert by[("context.guest.load_per_cpu", "node-a")].value == pytest.approx(0.5)
    assert by[("context.guest.memory.available", "node-a")].value == pytest.approx(3 / 8)
    assert by[("context.guest.memory.available", "node-a")].better == "higher"
    assert by[("context.guest.memory.available", "node-b")].value == pytest.approx(4 / 8)
    assert by[("context.guest.memory.swap", "node-a")].value == pytest.approx(3.0)
    assert by[("context.guest.memory.swap", "node-b")].value == 0
    assert by[("context.guest.pod.cpu_throttled", "node-a")].value == pytest.approx(0.25)


def test_backfilled_contention_flags_the_run(backfilled):
    prom, base = backfilled
    rows = [{"run_id": "r1", "platform": "kvm", "metric": r.metric, "value": r.value, "suite": "context"}
            for r in guest.readings(prom.query, base + 120, base + 420)]
    [run] = conditions.contended_runs(pd.DataFrame(rows))
    assert "CPU steal 9.0 % of a vCPU" in run.reasons and "the guest swapped (3 pages/s)" in run.reasons


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("prom-live")
    with node_exporter(workdir) as ne, prometheus(workdir, targets=[ne], scrape_s=1.0) as prom:
        wait_for_series(prom, 'count_over_time(node_cpu_seconds_total{mode="idle"}[30s]) >= 3')
        yield prom, ne


@pytest.mark.slow
def test_live_node_exporter_through_a_suites_run(live, tmp_path_factory):
    """`pytest suites/ --kubeconfig`: the api benchmark's windows get guest conditions via thanos-querier's route."""
    prom, ne = live
    with started(tmp_path_factory.mktemp("fake-okd")) as fc:
        fc.prometheus_upstream = prom.url
        run = run_suites(fc, tmp_path_factory.mktemp("results"), "suites/test_api.py", "--repeat", "2",
                         "--api-calls", "60", "--context-interval", "1")
    assert run.proc.returncode == 0, run.output[-3000:]
    ctx = run.runs.samples[run.runs.samples["suite"] == "context"].copy()
    assert len(ctx), run.output[-3000:]
    ctx["labels"] = ctx["labels"].map(json.loads)
    assert set(ctx["repetition"]) == {0, 1}
    assert {lab["source"] for lab in ctx["labels"]} == {"prometheus"}
    assert {lab["node"] for lab in ctx["labels"]} == {ne.address}
    assert {lab["window"] for lab in ctx["labels"]} == {"api.test_api_latency"}
    metrics = set(ctx["metric"])
    assert {"context.guest.cpu.steal", "context.guest.memory.available", "context.guest.load_per_cpu"} <= metrics
    avail = ctx[ctx["metric"] == "context.guest.memory.available"]["value"]
    assert ((avail > 0) & (avail <= 1)).all()
    assert all(math.isfinite(v) and v >= 0 for v in ctx["value"])
    # Only --kubeconfig: the hypervisor side is a one-line note in run.json, the run is unaffected.
    assert NO_HYPERVISOR in run.runs.runs[0].warnings


def test_a_wrong_token_degrades_to_one_note(live, tmp_path_factory):
    from suites.context.capture import Capture
    from suites.context.prometheus import GuestStats
    from suites.routes import https_querier

    prom, _ = live
    with started(tmp_path_factory.mktemp("fake-okd")) as fc:
        fc.prometheus_upstream = prom.url
        query = https_querier(fc.thanos_host, ca_pem=fc.ingress_ca.cert_pem.decode(), token="wrong",
                              address=fc.ingress_address)
        notes, recorded = [], []
        cap = Capture(lambda *a: recorded.append(a), notes.append, interval_s=0.2)
        cap.add(GuestStats(query))
        for rep in range(2):
            with cap.window("w", rep):
                time.sleep(1.1)
    assert recorded == []
    assert notes == [f"conditions: prometheus not captured: reading failed (Prometheus at {fc.thanos_host} answered HTTP 401)"]
