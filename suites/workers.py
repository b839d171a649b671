"""Which nodes the workload benchmarks run on: Ready, schedulable workers (not control plane)."""

from __future__ import annotations

from suites.conftest import node_role
from suites.kube import Kube, condition_is, path_for


def schedulable_workers(kube: Kube) -> list[dict]:
    out = []
    for n in kube.list(path_for("v1", "nodes")):
        if node_role(n) != "worker" or (n.get("spec") or {}).get("unschedulable") or not condition_is(n, "Ready"):
            continue
        out.append(n)
    return out


def hostname(node: dict) -> str:
    labels = node["metadata"].get("labels") or {}
    return labels.get("kubernetes.io/hostname", node["metadata"]["name"])
