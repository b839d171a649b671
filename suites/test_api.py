"""api: API request latency over N calls each: list nodes, create a configmap, delete it (P50/P99)."""

from __future__ import annotations

import secrets
import time

import pytest

from suites.kube import KubeError, path_for
from suites.stats import quantile
from suites.workloads import render


@pytest.mark.benchmark
@pytest.mark.criterion("api")
def test_api_latency(kube, namespace, suite_options, record, note, fail_with_evidence):
    n = suite_options.api_calls
    cm_path = path_for("v1", "configmaps", namespace)
    timings: dict[str, list[float]] = {"list_nodes": [], "create_configmap": [], "delete_configmap": []}
    errors: list[str] = []
    run = secrets.token_hex(2)

    def timed(op: str, fn) -> None:
        start = time.perf_counter()
        try:
            fn()
        except KubeError as exc:
            errors.append(f"{op}: {exc}")
            return
        timings[op].append((time.perf_counter() - start) * 1000.0)

    for i in range(n):
        name = f"okdbench-api-{run}-{i}"
        timed("list_nodes", lambda: kube.list(path_for("v1", "nodes")))
        timed("create_configmap", lambda: kube.create(cm_path, render("configmap", name=name, namespace=namespace, payload="x" * 64)))
        timed("delete_configmap", lambda: kube.delete(f"{cm_path}/{name}"))
    for op, values in timings.items():
        if values:
            record(f"api.{op}.p50", quantile(values, 0.5), "ms", calls=len(values))
            record(f"api.{op}.p99", quantile(values, 0.99), "ms", calls=len(values))
    note(f"{n} calls per operation, {kube.retries} retried requests so far")
    if errors:
        fail_with_evidence(f"{len(errors)} of {3 * n} API calls failed after retries: {errors[0]}", [])
