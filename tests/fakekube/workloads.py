"""Deployments, Services, Routes and the node lifecycle, as the controllers of a real cluster drive them.

- Deployment: keeps spec.replicas pods (owned by the Deployment) and its status.readyReplicas.
- Route: a host is assigned (<name>-<namespace>.apps.<domain>) when none is given.
- Node lifecycle: node_down(name) is what the node controller does once a kubelet stops posting
  status: the node turns Ready=Unknown and its pods Ready=False (their endpoints drop), and after
  `eviction_s` the pods are deleted, so the Deployment recreates them on other nodes.
  node_up(name) is the kubelet back: node Ready, its surviving pods Ready again.
- Serving: which pods actually answer requests (`serving(pod)`), for the router's endpoints and
  the Service's (`service_pick`, what kube-proxy chooses for a connection); a test marks the pods
  of a frozen or powered-off VM as not serving before the cluster notices.
"""

from __future__ import annotations

import copy
import threading
from typing import TYPE_CHECKING

from tests.fakekube.controllers import set_condition
from tests.fakekube.resources import Resource
from tests.fakekube.store import ApiError

if TYPE_CHECKING:
    from tests.fakekube.cluster import FakeCluster


class Workloads:
    def __init__(self, cluster: "FakeCluster", eviction_s: float = 2.0):
        self.c = cluster
        self.eviction_s = eviction_s
        self.silent_nodes: set[str] = set()  # VMs that do not answer (frozen, off, rebooting)
        self._lock = threading.Lock()
        self._rr = 0
        self._service_rr: dict[tuple[str, str], int] = {}
        self.picks: dict[str, int] = {}  # node -> connections the Service network sent to its pods
        cluster.store.hooks.append(self.on_write)

    # ------------------------------------------------------------ hooks

    def on_write(self, type_: str, res: Resource, obj: dict) -> None:
        if res.kind == "Deployment" and type_ == "ADDED":
            for _ in range(int(obj.get("spec", {}).get("replicas", 1))):
                self._new_pod(obj)
        elif res.kind == "Route" and type_ == "ADDED" and not obj.get("spec", {}).get("host"):
            md = obj["metadata"]
            host = f"{md['name']}-{md['namespace']}.apps.{self.c.domain}"
            self.c.store.mutate(res, md["namespace"], md["name"], lambda r: r["spec"].__setitem__("host", host))
        elif res.kind == "Pod":
            owner = self._owner(obj)
            if owner is None:
                return
            if type_ == "DELETED":
                dep = self._deployment(obj["metadata"]["namespace"], owner)
                if dep is not None:
                    self._new_pod(dep)
            self._update_status(obj["metadata"]["namespace"], owner)

    @staticmethod
    def _owner(pod: dict) -> str | None:
        ref = next((o for o in pod["metadata"].get("ownerReferences", []) if o.get("kind") == "Deployment"), None)
        return ref["name"] if ref else None

    def _deployment(self, ns: str, name: str) -> dict | None:
        try:
            return self.c.store.get(self.c.res("deployments"), ns, name)
        except ApiError:
            return None

    def _new_pod(self, dep: dict) -> None:
        md = dep["metadata"]
        template = copy.deepcopy(dep["spec"]["template"])
        tmd = template.setdefault("metadata", {})
        tmd["generateName"] = f"{md['name']}-"
        tmd["namespace"] = md["namespace"]
        tmd["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": md["name"],
                                   "uid": md["uid"], "controller": True}]
        try:
            self.c.store.create(self.c.res("pods"), md["namespace"], template)
        except ApiError:
            pass  # namespace going away

    def _update_status(self, ns: str, name: str) -> None:
        pods = [p for p in self.c.list("pods", ns) if self._owner(p) == name]
        ready = sum(1 for p in pods if _ready(p))

        def apply(d: dict) -> None:
            st = d.setdefault("status", {})
            st.update(replicas=len(pods), readyReplicas=ready, availableReplicas=ready)

        try:
            cur = self.c.store.get(self.c.res("deployments"), ns, name)
            if (cur.get("status") or {}).get("readyReplicas") != ready or (cur.get("status") or {}).get("replicas") != len(pods):
                self.c.store.mutate(self.c.res("deployments"), ns, name, apply)
        except ApiError:
            pass

    # ------------------------------------------------------------ node lifecycle

    def _pods_on(self, node: str) -> list[dict]:
        return [p for p in self.c.list("pods") if p.get("spec", {}).get("nodeName") == node
                and p.get("status", {}).get("phase") == "Running"]

    def _set_pod_ready(self, pod: dict, ready: bool) -> None:
        def apply(p: dict) -> None:
            for t in ("ContainersReady", "Ready"):
                set_condition(p, t, "True" if ready else "False", "" if ready else "NodeNotReady")

        try:
            self.c.store.mutate(self.c.res("pods"), pod["metadata"]["namespace"], pod["metadata"]["name"], apply)
        except ApiError:
            pass

    def node_down(self, node: str) -> None:
        self.c.patch("nodes", node, lambda n: set_condition(n, "Ready", "Unknown", "NodeStatusUnknown",
                                                            "Kubelet stopped posting node status."))
        for pod in self._pods_on(node):
            self._set_pod_ready(pod, False)
        self.c.at(self.eviction_s, lambda: self._evict(node))

    def _evict(self, node: str) -> None:
        if any(c["type"] == "Ready" and c["status"] == "True" for c in self.c.get("nodes", node)["status"]["conditions"]):
            return  # back before the toleration ran out
        for pod in self._pods_on(node):
            try:
                self.c.store.delete(self.c.res("pods"), pod["metadata"]["namespace"], pod["metadata"]["name"])
            except ApiError:
                pass

    def node_up(self, node: str) -> None:
        self.c.set_node_ready(node, True)
        for pod in self._pods_on(node):
            self._set_pod_ready(pod, True)

    # ------------------------------------------------------------ the router's endpoints

    def serving(self, pod: dict) -> bool:
        return pod.get("spec", {}).get("nodeName") not in self.silent_nodes

    def backend(self, host: str) -> tuple[int, bytes]:
        """What the router answers for a route host: round-robin over the Service's Ready pods."""
        route = next((r for r in self.c.list("routes") if r.get("spec", {}).get("host") == host), None)
        if route is None:
            return 503, b"<html><body><h1>Application is not available</h1></body></html>"
        endpoints = self.endpoints(route["metadata"]["namespace"], route["spec"]["to"]["name"])
        if endpoints is None:
            return 503, b"no service\n"
        if not endpoints:
            return 503, b"<html><body><h1>Application is not available</h1></body></html>"
        with self._lock:
            self._rr += 1
            pod = endpoints[self._rr % len(endpoints)]
        if not self.serving(pod):
            return 504, b"<html><body><h1>504 Gateway Time-out</h1></body></html>"
        return 200, b"Hello OpenShift!\n"

    def endpoints(self, ns: str, service: str) -> list[dict] | None:
        """The Service's endpoints (its selector's Ready pods); None when there is no such Service."""
        try:
            svc = self.c.get("services", service, ns)
        except ApiError:
            return None
        selector = ",".join(f"{k}={v}" for k, v in (svc["spec"].get("selector") or {}).items())
        return [p for p in self.c.list("pods", ns, selector) if _ready(p)]

    def service_pick(self, ns: str, service: str) -> dict | None:
        """The endpoint one new connection to the Service goes to (round robin per Service, as
        deterministic as a test needs); None when it has no endpoint (the connection is refused)."""
        endpoints = self.endpoints(ns, service) or []
        if not endpoints:
            return None
        with self._lock:
            n = self._service_rr.get((ns, service), 0)
            self._service_rr[(ns, service)] = n + 1
            pod = endpoints[n % len(endpoints)]
            node = pod.get("spec", {}).get("nodeName", "")
            self.picks[node] = self.picks.get(node, 0) + 1
        return pod


def _ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in pod.get("status", {}).get("conditions", []))
