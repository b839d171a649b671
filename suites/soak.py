"""What a soak window counts, as a pure state machine fed by informer events (old, new).

Baseline objects (the first list) set the starting state and count nothing. After that every
MODIFIED pair is compared: Ready True -> not True on a node, Degraded not True -> True on an
operator, restartCount increases on containers. Pairs come from watch events or from the diff
a re-list after 410 Gone produces, so a change is counted once whichever way it arrives.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


def _cond_status(obj: dict | None, type_: str) -> str | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c.get("status")
    return None


def _restarts(pod: dict | None) -> dict[str, int]:
    st = (pod or {}).get("status") or {}
    statuses = (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or [])
    return {c.get("name", "?"): int(c.get("restartCount") or 0) for c in statuses}


@dataclass
class SoakTracker:
    pod_namespace_prefix: str = "openshift-"
    node_notready: list[str] = field(default_factory=list)  # one entry per transition: node name
    degradations: list[str] = field(default_factory=list)  # operator names
    unavailable: list[str] = field(default_factory=list)
    restarts: Counter = field(default_factory=Counter)  # "ns/pod/container" -> restarts in window
    warning_events: Counter = field(default_factory=Counter)  # reason -> count

    def node(self, type_: str, old: dict | None, new: dict | None) -> None:
        if type_ == "MODIFIED" and _cond_status(old, "Ready") == "True" and _cond_status(new, "Ready") != "True":
            self.node_notready.append(new["metadata"]["name"])

    def operator(self, type_: str, old: dict | None, new: dict | None) -> None:
        if type_ != "MODIFIED":
            return
        name = new["metadata"]["name"]
        if _cond_status(old, "Degraded") != "True" and _cond_status(new, "Degraded") == "True":
            self.degradations.append(name)
        if _cond_status(old, "Available") == "True" and _cond_status(new, "Available") != "True":
            self.unavailable.append(name)

    def pod(self, type_: str, old: dict | None, new: dict | None) -> None:
        if new is None or not new["metadata"].get("namespace", "").startswith(self.pod_namespace_prefix):
            return
        before = _restarts(old) if type_ == "MODIFIED" else {}
        for container, count in _restarts(new).items():
            delta = count - before.get(container, 0)
            if delta > 0:
                self.restarts[f"{new['metadata']['namespace']}/{new['metadata']['name']}/{container}"] += delta

    def event(self, type_: str, old: dict | None, new: dict | None) -> None:
        if type_ == "ADDED" and new is not None and new.get("type") == "Warning":
            self.warning_events[new.get("reason") or "?"] += 1
