"""pod-startup: N pause pods spread over the workers; creation to Ready per pod (kube-burner's
podLatency: each condition's latency is when a watch first shows it True, measured from create)."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime

import pytest

from suites.kube import Informer, KubeError, condition, path_for
from suites.stats import quantile
from suites.workloads import render

def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


CONDITIONS = {"PodScheduled": "scheduled", "Initialized": "initialized", "ContainersReady": "containers_ready", "Ready": "ready"}


@pytest.mark.benchmark
@pytest.mark.criterion("pod-startup")
def test_pod_startup(kube, namespace, suite_options, record, note, fail_with_evidence):
    batch = secrets.token_hex(3)
    pods_path = path_for("v1", "pods", namespace)
    names = [f"okdbench-pause-{batch}-{i:03d}" for i in range(suite_options.pods)]
    created: dict[str, float] = {}
    seen: dict[str, dict[str, float]] = {n: {} for n in names}
    nodes: dict[str, str] = {}
    lock = threading.Lock()

    def on_event(type_: str, old: dict | None, new: dict | None) -> None:
        if new is None:
            return
        now = time.monotonic()
        name = new["metadata"]["name"]
        with lock:
            marks = seen.setdefault(name, {})
            for c in (new.get("status") or {}).get("conditions") or []:
                if c.get("status") == "True" and c.get("type") in CONDITIONS and c["type"] not in marks:
                    marks[c["type"]] = now
            if new.get("spec", {}).get("nodeName"):
                nodes[name] = new["spec"]["nodeName"]

    def all_ready() -> bool:
        with lock:
            return len(created) == len(names) and all("Ready" in seen[n] for n in names)

    informer = Informer(kube, pods_path, label_selector=f"okdbench.io/batch={batch}")
    deadline = time.monotonic() + suite_options.workload_timeout
    watcher = informer.run_in_thread(on_event, until=deadline, done=all_ready)
    # The watch must be open before the first create, or early transitions are stamped late.
    while informer.rv is None and watcher.is_alive():
        time.sleep(0.01)
    errors = []
    try:
        for name in names:
            with lock:
                created[name] = time.monotonic()
            try:
                kube.create(pods_path, render("pause-pod", name=name, namespace=namespace, batch=batch,
                                              image=suite_options.images["pause"]))
            except KubeError as exc:
                errors.append(str(exc))
                with lock:
                    created.pop(name, None)
        watcher.join(timeout=max(0.0, deadline - time.monotonic()) + 5)
    finally:
        informer.stop()
        watcher.join(timeout=10)
        for name in names:
            try:
                kube.delete(f"{pods_path}/{name}", gracePeriodSeconds=0)
            except KubeError:
                pass
    if watcher.errors:  # type: ignore[attr-defined]
        errors.append(str(watcher.errors[0]))  # type: ignore[attr-defined]
    latencies: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    for name in names:
        if name not in created:
            continue
        for ctype, t in seen[name].items():
            latencies[ctype].append((t - created[name]) * 1000.0)
        if "Ready" in seen[name]:
            record("pod.startup.ready", (seen[name]["Ready"] - created[name]) * 1000.0, "ms",
                   pod=name, node=nodes.get(name, "?"))
    for ctype, values in latencies.items():
        if values:
            for q in (0.5, 0.95, 0.99):
                record(f"pod.startup.{CONDITIONS[ctype]}.p{int(q * 100)}", quantile(values, q), "ms", pods=len(values))
    # The cluster's own view (condition timestamps, whole seconds): immune to watch delivery lag.
    server_s = []
    for pod in informer.cache.values():
        ready_c = condition(pod, "Ready") or {}
        if ready_c.get("status") == "True":
            server_s.append((_ts(ready_c["lastTransitionTime"]) - _ts(pod["metadata"]["creationTimestamp"])).total_seconds())
    if server_s:
        record("pod.startup.ready_server.p99", quantile(server_s, 0.99) * 1000.0, "ms", pods=len(server_s))
    ready = len(latencies["Ready"])
    spread = len(set(nodes.values()))
    note(f"{ready}/{len(names)} pods Ready on {spread} nodes")
    if errors or ready < len(names):
        stuck = [n for n in names if n in created and "Ready" not in seen[n]]
        why = errors[0] if errors else f"{len(stuck)} pods not Ready within {suite_options.workload_timeout:.0f}s (e.g. {stuck[0]})"
        fail_with_evidence(f"pod-startup: {why}", [f"ns/{namespace}"])
