"""FakeCluster: the scripted Kubernetes/OpenShift API server the suites' tests run against."""

from __future__ import annotations

import base64
import copy
import io
import json
import secrets
import ssl
import tarfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from tests.fakekube.certs import CertificateAuthority, csr_pem
from tests.fakekube.controllers import Controllers, set_condition
from tests.fakekube.objects import real
from tests.fakekube.processes import Processes
from tests.fakekube.programs import DEFAULT_PROGRAMS, Program
from tests.fakekube.resources import Registry, Resource
from tests.fakekube.router import RouterServer
from tests.fakekube.server import Api, ApiHTTPServer, Faults, LoggedRequest
from tests.fakekube.services import ServiceNetwork
from tests.fakekube.store import ApiError, Store, now_rfc3339
from tests.fakekube.workloads import Workloads


@dataclass
class Timings:
    """Scripted durations (seconds unless named _ms). Short: the suites' tests run in seconds."""

    pod_scheduled_s: float = 0.05
    pod_ready_s: float = 0.5
    job_run_s: float = 0.4
    build_pending_s: float = 0.2
    build_stages_ms: dict[str, int] = field(
        default_factory=lambda: {"FetchInputs": 150, "PullImages": 650, "Build": 1000, "PushImage": 200}
    )


@dataclass
class NodePerf:
    fsync_p99_ms: float = 4.0
    write_mbps: float = 320.0
    net_gbps: float = 9.4
    rtt_ms: float = 0.25


def _server_context(pair_dir: Path, stem: str, cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    cert, key = pair_dir / f"{stem}.crt", pair_dir / f"{stem}.key"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    key.chmod(0o600)
    ctx.load_cert_chain(cert, key)
    return ctx


class FakeCluster:
    """A real HTTPS API server in this process, scripted over time.

    openshift=False serves plain Kubernetes (no OpenShift API groups, no router).
    """

    def __init__(self, workdir: Path, *, openshift: bool = True, domain: str = "okdbench.test",
                 kubernetes_version: str = "v1.29.4"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.openshift = openshift
        self.domain = domain
        self.registry = Registry.build(openshift)
        self.store = Store(self.registry)
        self.token = "sha256~" + secrets.token_urlsafe(32)
        self.faults = Faults()
        self.requests: list[LoggedRequest] = []
        self.router_log: list[tuple[float, str, str]] = []
        self.logs: dict[tuple[str, str], str] = {}
        self.binary_uploads: list[tuple[str, str, list[str]]] = []  # (namespace, buildconfig, archive members)
        self.timings = Timings()
        self.programs: list[Program] = list(DEFAULT_PROGRAMS)
        self.build_outcome: dict[str, str] = {}
        self.perf: dict[str, NodePerf] = {}
        self.etcd_metrics = {"wal_fsync_p99_s": 0.0042, "peer_rtt_p99_s": 0.011, "leader_changes": 0.0}
        self.console_up = True
        self.version_info = {"major": "1", "minor": kubernetes_version.split(".")[1], "gitVersion": kubernetes_version,
                             "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2024-05-01T00:00:00Z",
                             "goVersion": "go1.21.9", "compiler": "gc", "platform": "linux/amd64"}
        self._timers: list[threading.Timer] = []
        self._watch_triggers: dict[str, list[tuple[float, Callable[[], None]]]] = {}
        self._request_triggers: list[list] = []  # [method, path, nth, seen, fn]
        self._lock = threading.Lock()
        self.api = Api(self)
        self.controllers = Controllers(self)
        self.workloads = Workloads(self)
        self.processes = Processes(self)
        self.service_network = ServiceNetwork(self)

        self.ca = CertificateAuthority("fakekube-apiserver-ca")
        leaf = self.ca.issue("kube-apiserver", dns=["localhost", "kubernetes.default.svc"], ips=["127.0.0.1"])
        self.ca_path = self.workdir / "ca.crt"
        self.ca_path.write_bytes(self.ca.cert_pem)
        self.server = ApiHTTPServer(self, _server_context(self.workdir, "apiserver", leaf.cert_pem, leaf.key_pem))
        self.port = self.server.server_address[1]
        self.router: RouterServer | None = None
        if openshift:
            self.ingress_ca = CertificateAuthority("ingress-operator@fake")
            wildcard = self.ingress_ca.issue(f"*.apps.{domain}", dns=[f"*.apps.{domain}"])
            self.router = RouterServer(self, _server_context(self.workdir, "router", wildcard.cert_pem, wildcard.key_pem))
        self.console_host = f"console-openshift-console.apps.{domain}"
        self.thanos_host = f"thanos-querier-openshift-monitoring.apps.{domain}"
        self.prometheus_upstream: str | None = None  # e.g. http://127.0.0.1:9090: answers every query instead of the etcd table
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "FakeCluster":
        for srv in filter(None, (self.server, self.router, self.service_network)):
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name=f"fakekube-{srv.server_address[1]}")
            t.start()
            self._threads.append(t)
        self.kubeconfig = self.write_kubeconfig(self.workdir / "kubeconfig")
        return self

    def stop(self) -> None:
        for t in self._timers:
            t.cancel()
        self.server.stopping.set()
        self.service_network.stopping.set()
        self.processes.stop()
        with self.store.changed:
            self.store.changed.notify_all()
        for srv in filter(None, (self.server, self.router, self.service_network)):
            srv.shutdown()
            srv.server_close()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ingress_address(self) -> str:
        """host:port of the router, for the suites' --ingress-address (no DNS for *.apps here)."""
        assert self.router is not None, "plain Kubernetes has no router"
        return f"127.0.0.1:{self.router.server_address[1]}"

    def write_kubeconfig(self, path: Path, *, ca_pem: bytes | None = None, token: str | None = None) -> Path:
        ca = base64.b64encode(ca_pem if ca_pem is not None else self.ca.cert_pem).decode()
        doc = {
            "apiVersion": "v1", "kind": "Config", "current-context": "admin",
            "clusters": [{"name": "fake", "cluster": {"server": self.url, "certificate-authority-data": ca}}],
            "users": [{"name": "admin", "user": {"token": token or self.token}}],
            "contexts": [{"name": "admin", "context": {"cluster": "fake", "user": "admin"}}],
        }
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    # ------------------------------------------------------------ timeline

    def at(self, delay_s: float, fn: Callable[[], Any]) -> None:
        """Run fn after delay_s seconds (a scripted change, or a controller's next step)."""
        def run() -> None:
            if not self.server.stopping.is_set():
                fn()

        t = threading.Timer(max(0.0, delay_s), run)
        t.daemon = True
        with self._lock:
            self._timers = [x for x in self._timers if x.is_alive()]
            self._timers.append(t)
        t.start()

    def on_first_watch(self, plural: str, delay_s: float, fn: Callable[[], Any]) -> None:
        """Script fn delay_s after a client first watches `plural` (e.g. when a soak starts)."""
        with self._lock:
            self._watch_triggers.setdefault(plural, []).append((delay_s, fn))

    def before_request(self, method: str, path: str, nth: int, fn: Callable[[], Any]) -> None:
        """Script fn to run just before the nth `method path` request is answered (a change tied to
        what the client has seen, not to the clock: it holds however slow the machine is)."""
        with self._lock:
            self._request_triggers.append([method, path, nth, 0, fn])

    def on_watch_started(self, res: Resource) -> None:
        with self._lock:
            triggers = self._watch_triggers.pop(res.plural, [])
        for delay, fn in triggers:
            self.at(delay, fn)

    def cut_watches(self, gone: bool = True) -> None:
        """Drop every open watch; gone=True also compacts, so resuming gets 410 and must re-list."""
        self.store.cut_watches(gone=gone)

    def cut_watches_every(self, interval_s: float, gone: bool = True, times: int = 1000) -> None:
        """Keep cutting watches (a flaky load balancer in front of the API, or etcd compactions)."""
        def tick(left: int) -> None:
            self.cut_watches(gone=gone)
            if left > 1:
                self.at(interval_s, lambda: tick(left - 1))

        self.at(interval_s, lambda: tick(times))

    def set_faults(self, error_ratio: float = 0.0, reset_ratio: float = 0.0, seed: int = 0, include_watches: bool = True) -> Faults:
        self.faults = Faults(error_ratio=error_ratio, reset_ratio=reset_ratio, seed=seed, include_watches=include_watches)
        return self.faults

    def log_request(self, entry: LoggedRequest) -> None:
        due = []
        with self._lock:
            self.requests.append(entry)
            for trig in self._request_triggers:
                if trig[0] == entry.method and trig[1] == entry.path:
                    trig[3] += 1
                    if trig[3] == trig[2]:
                        due.append(trig[4])
        for fn in due:
            fn()

    # ------------------------------------------------------------ objects

    def res(self, plural: str) -> Resource:
        r = self.registry.by_plural(plural)
        if r is None:
            raise KeyError(f"{plural} is not served by this fake cluster (openshift={self.openshift})")
        return r

    def apply(self, obj: dict) -> dict:
        """Create or replace an object as-is (scenario set-up; namespaces are created on demand)."""
        res = self.registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if res is None:
            raise KeyError(f"{obj.get('apiVersion')}/{obj.get('kind')} is not served (openshift={self.openshift})")
        md = obj["metadata"]
        ns = md.get("namespace") if res.namespaced else None
        if ns:
            self.ensure_namespace(ns)
        try:
            self.store.get(res, ns, md["name"])
        except ApiError:
            return self.store.create(res, ns, obj)
        return self.store.replace(res, ns, md["name"], obj)

    def load(self, filename: str, mutate: Callable[[dict], Any] | None = None) -> list[dict]:
        """Serve the objects of one file in tests/data/real-objects/."""
        out = []
        for obj in real(filename):
            if mutate:
                mutate(obj)
            out.append(self.apply(obj))
        return out

    def ensure_namespace(self, name: str) -> None:
        ns = self.res("namespaces")
        try:
            self.store.get(ns, None, name)
        except ApiError:
            self.store.create(ns, None, {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}})

    def get(self, plural: str, name: str, namespace: str | None = None) -> dict:
        return self.store.get(self.res(plural), namespace, name)

    def list(self, plural: str, namespace: str | None = None, label_selector: str = "") -> list[dict]:
        return self.store.list(self.res(plural), namespace, label_selector)[0]

    def patch(self, plural: str, name: str, fn: Callable[[dict], Any], namespace: str | None = None) -> dict:
        return self.store.mutate(self.res(plural), namespace, name, fn)

    def set_condition(self, plural: str, name: str, type_: str, status: str, reason: str = "", message: str = "",
                      namespace: str | None = None) -> dict:
        return self.patch(plural, name, lambda o: set_condition(o, type_, status, reason, message), namespace)

    def set_node_ready(self, name: str, ready: bool, reason: str = "") -> dict:
        def apply(node: dict) -> None:
            reason_ = reason or ("KubeletReady" if ready else "KubeletNotReady")
            msg = "kubelet is posting ready status" if ready else "container runtime network not ready: NetworkReady=false"
            set_condition(node, "Ready", "True" if ready else "False", reason_, msg, update_key="lastHeartbeatTime")

        return self.patch("nodes", name, apply)

    def restart_container(self, namespace: str, pod: str, container: str | None = None) -> dict | None:
        return self.controllers.restart_container(namespace, pod, container)

    def add_csr(self, *, username: str, groups: list[str], signer: str, cn: str, org: str,
                usages: list[str] | None = None, approved: str | None = None, name: str | None = None,
                dns: list[str] = (), ips: list[str] = ()) -> dict:
        """A CSR as a kubelet or anyone else would submit it (the shape of the captured ones)."""
        request = base64.b64encode(csr_pem(cn, org, list(dns), list(ips))).decode()
        obj = {
            "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name or f"csr-{self.store.random_suffix()}", "generateName": "csr-"},
            "spec": {"groups": groups, "request": request, "signerName": signer, "username": username,
                     "usages": usages or (["digital signature", "key encipherment", "client auth"]
                                          if signer.endswith("kube-apiserver-client-kubelet")
                                          else ["digital signature", "key encipherment", "server auth"])},
            "status": {},
        }
        if approved:
            now = now_rfc3339()
            obj["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": approved,
                                             "message": "This CSR was approved by kubectl certificate approve.",
                                             "lastUpdateTime": now, "lastTransitionTime": now}]}
        return self.apply(obj)

    def node_perf(self, node: str) -> dict[str, float]:
        return vars(self.perf.get(node, NodePerf()))

    def node_ip(self, node: str) -> str:
        try:
            n = self.get("nodes", node)
        except ApiError:
            return ""
        return next((a["address"] for a in n.get("status", {}).get("addresses", []) if a.get("type") == "InternalIP"), "")

    def real_build(self) -> dict:
        return real("builds_complete-source-strategy-4-stages_okd.yaml")[0]

    def prometheus_answer(self, query: str, raw_query: str = "") -> dict:
        if self.prometheus_upstream:
            # A real Prometheus (tests/support/prometheus.py) attached answers every query.
            with urllib.request.urlopen(f"{self.prometheus_upstream}/api/v1/query?{raw_query}", timeout=30) as resp:
                return json.loads(resp.read())
        if "etcd_disk_wal_fsync_duration_seconds_bucket" in query:
            value = self.etcd_metrics["wal_fsync_p99_s"]
        elif "etcd_network_peer_round_trip_time_seconds_bucket" in query:
            value = self.etcd_metrics["peer_rtt_p99_s"]
        elif "etcd_server_leader_changes_seen_total" in query:
            value = self.etcd_metrics["leader_changes"]
        else:
            return {"status": "success", "data": {"resultType": "vector", "result": []}}
        result = [{"metric": {"pod": f"etcd-{n['metadata']['name']}", "namespace": "openshift-etcd"},
                   "value": [time.time(), repr(float(value))]}
                  for n in self.list("nodes", label_selector="node-role.kubernetes.io/master")]
        return {"status": "success", "data": {"resultType": "vector", "result": result}}

    # ------------------------------------------------------------ API hooks (called by server.Api)

    def admit(self, res: Resource, ns: str | None, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        obj.pop("status", None) if res.kind in ("Pod", "Job", "Build") else None
        return self.store.create(res, ns, obj)

    def subresource(self, method: str, res: Resource, ns, name, sub: str, query: dict, payload, body: bytes):
        if sub == "log" and method == "GET":
            self.store.get(res, ns, name)
            text = self.logs.get((ns, name), "")
            if query.get("tailLines", "").isdigit():  # the kubelet: the last N lines, then at most limitBytes
                lines = text.splitlines(keepends=True)
                text = "".join(lines[len(lines) - min(len(lines), int(query["tailLines"])):])
            if query.get("limitBytes", "").isdigit():
                text = text.encode()[:int(query["limitBytes"])].decode("utf-8", "replace")
            return 200, text
        if sub == "instantiatebinary" and method == "POST":
            # The builder would unpack this archive: refuse what it could not read.
            try:
                with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                    self.binary_uploads.append((ns, name, sorted(tar.getnames())))
            except tarfile.TarError:
                raise ApiError(400, "BadRequest", "instantiatebinary: the body is not a tar archive") from None
            return 201, self.controllers.instantiate(ns, name, None)
        if sub == "instantiate" and method == "POST":
            return 201, self.controllers.instantiate(ns, name, payload)
        if sub == "approval" and method == "PUT":
            conds = (payload or {}).get("status", {}).get("conditions", [])

            def approve(o: dict) -> None:
                o.setdefault("status", {})["conditions"] = conds
            return 200, self.store.mutate(res, ns, name, approve)
        if sub == "status":
            if method == "GET":
                return 200, self.store.get(res, ns, name)
            if method == "PUT":
                return 200, self.store.mutate(res, ns, name, lambda o: o.__setitem__("status", payload.get("status", {})))
            if method == "PATCH":
                return 200, self.api.patch(res, ns, name, payload, "merge")
        raise ApiError(405, "MethodNotAllowed", f"{method} {res.plural}/{sub} is not supported by the fake")
