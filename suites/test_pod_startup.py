"""pod-startup: N pause pods spread over the workers; creation to Ready per pod (kube-burner's
podLatency: each condition's latency is when a watch first shows it True, measured from create)."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from datetime import datetime

import pytest

from suites.kube import Informer, KubeError, condition, path_for
from suites.stats import quantile
from suites.workloads import render

log = logging.getLogger("okdbench.pod_startup")

CONDITIONS = {"PodScheduled": "scheduled", "Initialized": "initialized", "ContainersReady": "containers_ready", "Ready": "ready"}


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class PodLatency:
    """Create stamps and first-seen-True stamps per condition, fed by a watch thread."""

    def __init__(self, names: list[str]):
        self.names = names
        self.created: dict[str, float] = {}
        self.seen: dict[str, dict[str, float]] = {n: {} for n in names}
        self.nodes: dict[str, str] = {}
        self.lock = threading.Lock()

    def on_event(self, type_: str, old: dict | None, new: dict | None) -> None:
        if new is None:
            return
        now = time.monotonic()
        name = new["metadata"]["name"]
        with self.lock:
            marks = self.seen.setdefault(name, {})
            for c in (new.get("status") or {}).get("conditions") or []:
                if c.get("status") == "True" and c.get("type") in CONDITIONS and c["type"] not in marks:
                    marks[c["type"]] = now
            if (new.get("spec") or {}).get("nodeName"):
                self.nodes[name] = new["spec"]["nodeName"]

    def all_ready(self) -> bool:
        with self.lock:
            return len(self.created) == len(self.names) and all("Ready" in self.seen[n] for n in self.names)

    def latencies_ms(self, ctype: str) -> dict[str, float]:
        return {n: (self.seen[n][ctype] - self.created[n]) * 1000.0
                for n in self.names if n in self.created and ctype in self.seen[n]}


@pytest.mark.benchmark
@pytest.mark.criterion("pod-startup")
def test_pod_startup(kube, namespace, suite_options, record, note, fail_with_evidence):
    batch = secrets.token_hex(3)
    pods_path = path_for("v1", "pods", namespace)
    lat = PodLatency([f"okdbench-pause-{batch}-{i:03d}" for i in range(suite_options.pods)])
    informer = Informer(kube, pods_path, label_selector=f"okdbench.io/batch={batch}")
    deadline = time.monotonic() + suite_options.workload_timeout
    watcher = informer.run_in_thread(lat.on_event, until=deadline, done=lat.all_ready)
    # The watch must be open before the first create, or early transitions are stamped late.
    while informer.rv is None and watcher.is_alive():
        time.sleep(0.01)
    errors: list[str] = []
    start = time.monotonic()
    log.info("pod-startup: creating %d pods", len(lat.names))
    try:
        for name in lat.names:
            with lat.lock:
                lat.created[name] = time.monotonic()
            try:
                kube.create(pods_path, render("pause-pod", name=name, namespace=namespace, batch=batch,
                                              image=suite_options.images["pause"]))
            except KubeError as exc:
                errors.append(str(exc))
                with lat.lock:
                    lat.created.pop(name, None)
        watcher.join(timeout=max(0.0, deadline - time.monotonic()) + 5)
        informer.stop()
        watcher.join(timeout=10)
        log.info("pod-startup: watched %d pods for %.1fs", len(lat.names), time.monotonic() - start)
        errors += [str(e) for e in watcher.errors]  # type: ignore[attr-defined]
        _record(lat, informer, record)
        ready = len(lat.latencies_ms("Ready"))
        note(f"{ready}/{len(lat.names)} pods Ready on {len(set(lat.nodes.values()))} nodes")
        if errors or ready < len(lat.names):
            stuck = [n for n in lat.names if n in lat.created and "Ready" not in lat.seen[n]]
            why = errors[0] if errors else f"{len(stuck)} pods not Ready within {suite_options.workload_timeout:.0f}s (e.g. {stuck[0]})"
            fail_with_evidence(f"pod-startup: {why}", [f"ns/{namespace}"])
    finally:
        informer.stop()
        # After the verdict and its evidence: the pods go with the test.
        for name in lat.names:
            try:
                kube.delete(f"{pods_path}/{name}", gracePeriodSeconds=0)
            except KubeError:
                pass


def _record(lat: PodLatency, informer: Informer, record) -> None:
    for name, ms in lat.latencies_ms("Ready").items():
        record("pod.startup.ready", ms, "ms", pod=name, node=lat.nodes.get(name, "?"))
    for ctype, short in CONDITIONS.items():
        values = list(lat.latencies_ms(ctype).values())
        if values:
            for q in (0.5, 0.95, 0.99):
                record(f"pod.startup.{short}.p{int(q * 100)}", quantile(values, q), "ms", pods=len(values))
    # The cluster's own view (condition timestamps, whole seconds): immune to watch delivery lag.
    server_s = []
    for pod in informer.cache.values():
        ready = condition(pod, "Ready") or {}
        if ready.get("status") == "True":
            server_s.append((_ts(ready["lastTransitionTime"]) - _ts(pod["metadata"]["creationTimestamp"])).total_seconds())
    if server_s:
        record("pod.startup.ready_server.p99", quantile(server_s, 0.99) * 1000.0, "ms", pods=len(server_s))
