"""Nodes as the suites see them: roles, the run.json inventory, and which nodes the workload
benchmarks run on (Ready, schedulable, worker role; on compact clusters the masters carry it too)."""

from __future__ import annotations

import re
from typing import Any

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


def _quantity_mib(q: str | None) -> int | None:
    if not q:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?|[kmgt]|)", str(q))
    if not m:
        return None
    mult = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    return int(float(m.group(1)) * mult.get(m.group(2), 1) / 2**20)


def node_role(node: dict) -> str:
    labels = (node.get("metadata") or {}).get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    if "master" in roles or "control-plane" in roles:
        return "master"
    return "worker" if "worker" in roles or not roles else roles[0]


def node_group_info(role: str, nodes: list[dict]) -> Any:
    """run.json's inventory entry for one role, sized from the first node's capacity."""
    from results.schema import NodeGroupInfo

    cap = (nodes[0].get("status") or {}).get("capacity") or {}
    cpu = str(cap.get("cpu", "0"))
    try:
        vcpu = (round(int(cpu[:-1]) / 1000) if cpu.endswith("m") else int(float(cpu))) or None
    except ValueError:
        vcpu = None
    disk_mib = _quantity_mib(cap.get("ephemeral-storage"))
    return NodeGroupInfo(role=role, count=len(nodes), vcpu=vcpu, memory_mib=_quantity_mib(cap.get("memory")),
                         disk_gib=disk_mib // 1024 if disk_mib else None)
