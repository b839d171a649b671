"""The cluster's ingress: HTTPS for *.apps.<domain> with a cert from the ingress CA.

It answers the console route and thanos-querier's Prometheus query API (values from the
cluster's etcd metric table); any other host gets the router's 503 page, as HAProxy does.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from tests.fakekube.cluster import FakeCluster


class RouterServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, cluster: "FakeCluster", ssl_context: ssl.SSLContext):
        self.cluster = cluster
        self.ssl_context = ssl_context
        super().__init__(("127.0.0.1", 0), RouterHandler)

    def get_request(self):
        sock, addr = super().get_request()
        # Headers and body go out in separate writes: without NODELAY, Nagle + delayed ACK add 40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        pass


class RouterHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RouterServer

    def log_message(self, fmt, *args) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.do_handshake()

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        c = self.server.cluster
        host = (self.headers.get("Host") or "").split(":")[0]
        url = urlsplit(self.path)
        c.router_log.append((time.time(), host, url.path))
        if host == c.console_host and c.console_up:
            self._send(200, b"<!DOCTYPE html><html><head><title>OKD</title></head><body>console</body></html>", "text/html")
        elif host == c.thanos_host and url.path == "/api/v1/query":
            if self.headers.get("Authorization") != f"Bearer {c.token}":
                self._send(401, b"Unauthorized\n", "text/plain")
                return
            query = parse_qs(url.query).get("query", [""])[0]
            self._send(200, json.dumps(c.prometheus_answer(query, url.query)).encode(), "application/json")
        else:  # an application's route (tests/fakekube/workloads.py), or HAProxy's 503 page
            code, page = c.workloads.backend(host)
            self._send(code, page, "text/html")
