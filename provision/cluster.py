"""The Cluster handle the suites work against: attached by kubeconfig or provisioned from a spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.spec import ClusterSpec


@dataclass
class Cluster:
    name: str
    platform: str  # the hypervisor: kvm | vsphere
    kubeconfig: Path | None
    spec: ClusterSpec | None = None
    provisioned: bool = False  # stood up by this session (install timings are then known)
    timings: dict[str, float] = field(default_factory=dict)
    hypervisor: dict[str, Any] = field(default_factory=dict)


def cluster_name_from_kubeconfig(path: Path) -> str:
    """OKD API URLs are https://api.<name>.<base domain>:6443; fall back to the context's cluster entry."""
    from plumbing.kubeconfig import read_kubeconfig

    cfg = read_kubeconfig(path)  # bounded, shape-checked: one line naming the file and key, or the dict
    current = cfg.get("current-context")
    contexts = {c.get("name"): c.get("context", {}) for c in cfg.get("contexts") or [] if isinstance(c, dict)}
    cluster_ref = (contexts.get(current) or {}).get("cluster")
    clusters = {c.get("name"): c.get("cluster", {}) for c in cfg.get("clusters") or [] if isinstance(c, dict)}
    server = str((clusters.get(cluster_ref) or {}).get("server", ""))
    host = server.split("://", 1)[-1].split(":", 1)[0].split("/", 1)[0]
    if host.startswith("api.") and host.count(".") >= 2:
        return host.split(".")[1]
    return str(cluster_ref or current or "unknown")
