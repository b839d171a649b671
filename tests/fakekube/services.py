"""The cluster's Service network on loopback: `http://<svc>.<ns>.svc[.cluster.local]:<port>/` as pods reach it.

Pods the fake runs for real (tests/fakekube/processes.py) get `http_proxy` pointing here, so an
unchanged `curl http://web.ns.svc:8080/` arrives as a proxy request naming the Service. Each
request is one new connection load-balanced over the Service's Ready endpoints
(Workloads.service_pick), with what a client of a real cluster sees:
- an endpoint whose node answers: 200;
- an endpoint on a silent node (frozen, off, rebooting): no answer at all, the connection hangs
  until the client gives up (a real SYN or request to a dead VM is dropped, not refused);
- no endpoint, or no such Service: the connection is closed without an answer.
Every request is logged (`log`): the ground truth a test compares the prober's log with.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from tests.fakekube.cluster import FakeCluster

HANG_MAX_S = 120.0  # a hung request is released by then even if its client never hangs up


@dataclass(frozen=True)
class ServiceRequest:
    t: float  # when the connection was load-balanced
    t_end: float
    namespace: str
    service: str
    pod: str  # "" when none
    outcome: str  # "ok" | "hung" | "refused"


class ServiceNetwork(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, cluster: "FakeCluster"):
        self.cluster = cluster
        self.log: list[ServiceRequest] = []
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), ServiceHandler)

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request, client_address):
        pass


def _service(host: str) -> tuple[str, str] | None:
    """'web.ns.svc' or 'web.ns.svc.cluster.local' -> (namespace, service)."""
    parts = host.split(".")
    if len(parts) in (3, 5) and parts[2] == "svc" and (len(parts) == 3 or parts[3:] == ["cluster", "local"]):
        return parts[1], parts[0]
    return None


class ServiceHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ServiceNetwork

    def log_message(self, fmt, *args) -> None:
        pass

    def _hang(self) -> None:
        """Answer nothing until the client closes the connection."""
        deadline = time.monotonic() + HANG_MAX_S
        while time.monotonic() < deadline and not self.server.stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.1)
            if readable:
                try:
                    if not self.connection.recv(4096):
                        break
                except OSError:
                    break

    def do_GET(self) -> None:
        t = time.time()
        c = self.server.cluster
        url = urlsplit(self.path)
        target = _service(url.hostname or (self.headers.get("Host") or "").split(":")[0])
        pod = c.workloads.service_pick(*target) if target else None
        if pod is None:
            outcome = "refused"
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        elif not c.workloads.serving(pod):
            outcome = "hung"
            self.close_connection = True
            self._hang()
        else:
            outcome = "ok"
            body = b"Hello OpenShift!\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        ns, svc = target or ("", "")
        self.server.log.append(ServiceRequest(t, time.time(), ns, svc, pod["metadata"]["name"] if pod else "", outcome))
