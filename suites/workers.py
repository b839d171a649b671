"""Which nodes the workload benchmarks run on: Ready, schedulable nodes with the worker role
(on compact clusters the masters carry it too and are used)."""

from __future__ import annotations

from suites.kube import Kube, condition_is, path_for

WORKER_LABEL = "node-role.kubernetes.io/worker"


def schedulable_workers(kube: Kube) -> list[dict]:
    out = []
    for n in kube.list(path_for("v1", "nodes"), labelSelector=WORKER_LABEL):
        if (n.get("spec") or {}).get("unschedulable") or not condition_is(n, "Ready"):
            continue
        out.append(n)
    return out


def hostname(node: dict) -> str:
    labels = node["metadata"].get("labels") or {}
    return labels.get("kubernetes.io/hostname", node["metadata"]["name"])
