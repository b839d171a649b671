"""Node and pod Ready transitions from watch events, stamped on receipt (ms resolution).

A Recorder runs two informers (the disrupted node; the workload's pods) and keeps, besides the
transition list, the live state the suite waits on: is the node Ready, how many pods are Ready.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from suites.kube import Informer, Kube, condition_is, path_for


@dataclass(frozen=True)
class Transition:
    t: float  # wall clock (epoch s) when the event arrived
    kind: str  # "node" | "pod"
    name: str
    state: str  # "Ready" | "NotReady" | "Deleted"


class Recorder:
    def __init__(self, kube: Kube, namespace: str, app: str, nodes: list[str]):
        self.transitions: list[Transition] = []
        self.node_ready: dict[str, bool] = {}
        self.pod_ready: dict[str, bool] = {}
        self.pod_node: dict[str, str] = {}
        self.changed = threading.Condition()
        self._informers = [
            (Informer(kube, path_for("v1", "nodes")), self._node),
            (Informer(kube, path_for("v1", "pods", namespace), label_selector=f"app={app}"), self._pod),
        ]
        self._nodes = set(nodes)
        self._threads: list[threading.Thread] = []

    def start(self) -> "Recorder":
        for inf, handler in self._informers:
            inf.sync(handler)  # the starting state: recorded, not counted as transitions
        with self.changed:
            self.transitions.clear()
        self._threads = [inf.run_in_thread(handler, initial=False) for inf, handler in self._informers]
        return self

    def stop(self) -> list[str]:
        """Stop watching; the errors the watches ended with (one line each)."""
        for inf, _ in self._informers:
            inf.stop()
        for t in self._threads:
            t.join(timeout=30)
        return [str(e) for t in self._threads for e in t.errors]  # type: ignore[attr-defined]

    def _add(self, kind: str, name: str, state: str) -> None:
        with self.changed:
            self.transitions.append(Transition(time.time(), kind, name, state))
            self.changed.notify_all()

    def _node(self, type_: str, old: dict | None, new: dict | None) -> None:
        if new is None or new["metadata"]["name"] not in self._nodes:
            return
        name, ready = new["metadata"]["name"], condition_is(new, "Ready")
        before = self.node_ready.get(name)
        with self.changed:
            self.node_ready[name] = ready
        if before is not None and before != ready:
            self._add("node", name, "Ready" if ready else "NotReady")

    def _pod(self, type_: str, old: dict | None, new: dict | None) -> None:
        if type_ == "DELETED" and old is not None:
            name = old["metadata"]["name"]
            with self.changed:
                self.pod_ready.pop(name, None)
            self._add("pod", name, "Deleted")
            return
        if new is None:
            return
        name, ready = new["metadata"]["name"], condition_is(new, "Ready")
        before = self.pod_ready.get(name)
        with self.changed:
            self.pod_ready[name] = ready
            self.pod_node[name] = (new.get("spec") or {}).get("nodeName") or ""
        if before != ready and (before is not None or ready):
            self._add("pod", name, "Ready" if ready else "NotReady")

    def ready_pods(self, off: str | None = None) -> int:
        """Ready pods; with off=node, only those running elsewhere."""
        with self.changed:
            return sum(ready for pod, ready in self.pod_ready.items() if off is None or self.pod_node.get(pod) != off)

    def wait(self, predicate, timeout_s: float) -> bool:
        """Until predicate() holds (re-checked on every event); False at the timeout."""
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 1.0))
            return True
