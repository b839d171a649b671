"""The HTTPS front of the fake API server: routing, auth, watch streams, injected faults."""

from __future__ import annotations

import json
import logging
import random
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tests.fakekube.store import ApiError, json_patch, matches, merge_patch

if TYPE_CHECKING:
    from tests.fakekube.cluster import FakeCluster

log = logging.getLogger("fakekube")


@dataclass
class Faults:
    """Knobs the fault-injection tests turn. Decisions come from a seeded RNG: runs repeat."""

    error_ratio: float = 0.0  # answered 500/503 with a Status body
    reset_ratio: float = 0.0  # TCP RST after the request was read, before any answer
    seed: int = 0
    include_watches: bool = True
    injected_errors: int = 0
    injected_resets: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def decide(self, is_watch: bool) -> str | None:
        if is_watch and not self.include_watches:
            return None
        with self._lock:
            x = self._rng.random()
            if x < self.reset_ratio:
                self.injected_resets += 1
                return "reset"
            if x < self.reset_ratio + self.error_ratio:
                self.injected_errors += 1
                return "error"
        return None


@dataclass
class LoggedRequest:
    t: float
    method: str
    path: str
    query: str
    status: int
    fault: str | None = None
    watch: bool = False


class _Abort(Exception):
    """The connection was dropped on purpose (fault or watch cut)."""


class ApiHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, cluster: "FakeCluster", ssl_context: ssl.SSLContext):
        self.cluster = cluster
        self.ssl_context = ssl_context
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), ApiHandler)

    def get_request(self):
        sock, addr = super().get_request()
        # Headers and body go out in separate writes: without NODELAY, Nagle + delayed ACK add 40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Handshake in the handler thread: a slow client must not stall accept().
        return self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):  # noqa: D401 - quiet: clients hang up on purpose
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiHTTPServer

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
            raise

    def handle(self) -> None:
        try:
            super().handle()
        except (ssl.SSLError, ConnectionError, _Abort):
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # ------------------------------------------------------------ plumbing

    def _serve(self, method: str) -> None:
        cluster = self.server.cluster
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        is_watch = query.get("watch") in ("true", "1")
        entry = LoggedRequest(time.time(), method, url.path, url.query, 0, watch=is_watch)
        cluster.log_request(entry)
        fault = cluster.faults.decide(is_watch)
        if fault == "reset":
            entry.fault, entry.status = "reset", 0
            self._reset()
        if fault == "error":
            entry.fault = "error"
            code = 503 if cluster.faults.injected_errors % 2 else 500
            reason = "ServiceUnavailable" if code == 503 else "InternalError"
            entry.status = code
            self._json(code, ApiError(code, reason, "injected fault").status())
            return
        if self.headers.get("Authorization") != f"Bearer {cluster.token}":
            entry.status = 401
            self._json(401, ApiError(401, "Unauthorized", "Unauthorized").status())
            return
        try:
            if is_watch:
                entry.status = 200
                self._watch(url.path, query)
                return
            code, payload = cluster.api.handle(method, url.path, query, body, self.headers.get("Content-Type") or "")
        except ApiError as exc:
            code, payload = exc.code, exc.status()
        except (ValueError, KeyError, TypeError) as exc:
            code, payload = 400, ApiError(400, "BadRequest", f"fake server could not process the request: {exc}").status()
        entry.status = code
        if isinstance(payload, str):
            self._send(code, payload.encode(), "text/plain; charset=utf-8")
        else:
            self._json(code, payload)

    def _send(self, code: int, data: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", f"fake-{time.monotonic_ns()}")
        self.end_headers()
        self.wfile.write(data)

    def _json(self, code: int, obj: Any) -> None:
        self._send(code, json.dumps(obj).encode(), "application/json")

    def _reset(self) -> None:
        # SO_LINGER 0 turns close() into a TCP RST: the client sees "connection reset by peer".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        raise _Abort()

    # ------------------------------------------------------------ watch

    def _chunk(self, obj: Any) -> None:
        data = (json.dumps(obj) + "\n").encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _watch(self, path: str, query: dict[str, str]) -> None:
        cluster = self.server.cluster
        res, ns, name, sub = cluster.api.route(path)
        if res is None or name or sub:
            raise ApiError(404, "NotFound", f"cannot watch {path}")
        store = cluster.store
        label_sel, field_sel = query.get("labelSelector", ""), query.get("fieldSelector", "")
        timeout = float(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        cluster.on_watch_started(res)
        with store.lock:
            epoch = store.cut_epoch
            rv_param = query.get("resourceVersion") or ""
            if rv_param in ("", "0"):
                items, last = store.list(res, ns, label_sel, field_sel)
                initial = [{"type": "ADDED", "object": o} for o in items]
            else:
                last = int(rv_param)
                initial = []
                if store.too_old(last):
                    gone = ApiError(410, "Expired", f"too old resource version: {last} ({store.compacted_rv})").status()
                    self._chunk({"type": "ERROR", "object": gone})
                    self.wfile.write(b"0\r\n\r\n")
                    return
        for ev in initial:
            self._chunk(ev)
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + 1.0
        while True:
            with store.changed:
                events = store.events_since(res, last)
                if not events and store.cut_epoch == epoch and not self.server.stopping.is_set():
                    store.changed.wait(timeout=0.25)
                    events = store.events_since(res, last)
                cut = store.cut_epoch != epoch or self.server.stopping.is_set()
                current_rv = store.rv
            if cut:
                # A dropped stream, not a clean end: no terminating chunk.
                self.close_connection = True
                raise _Abort()
            for ev in events:
                last = ev.rv
                if matches(ev.obj, ns, label_sel, field_sel):
                    self._chunk({"type": ev.type, "object": ev.obj})
            # Every event of this resource up to current_rv was seen under the same lock.
            last = max(last, current_rv)
            now = time.monotonic()
            if bookmarks and now >= next_bookmark:
                self._chunk({"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version,
                                                            "metadata": {"resourceVersion": str(last)}}})
                next_bookmark = now + 1.0
            if now >= deadline:
                self.wfile.write(b"0\r\n\r\n")
                return


class Api:
    """Maps REST paths to store operations; subresources go to the cluster's controllers."""

    def __init__(self, cluster: "FakeCluster"):
        self.cluster = cluster
        self.registry = cluster.registry
        self.store = cluster.store

    def route(self, path: str):
        segs = [s for s in path.split("/") if s]
        if segs[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", segs[2:]
        elif len(segs) >= 3 and segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            return None, None, None, None
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            cand = self.registry.find(group, version, rest[2])
            if cand is not None and cand.namespaced:
                ns, rest = rest[1], rest[2:]
        if not rest:
            return None, None, None, None
        res = self.registry.find(group, version, rest[0])
        if res is None:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub and sub not in res.subresources:
            raise ApiError(404, "NotFound", f"{res.plural}/{sub} is not served")
        return res, ns, name, sub

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes, ctype: str):
        c = self.cluster
        path = path.rstrip("/") or "/"
        if path == "/version":
            return 200, c.version_info
        if path == "/api":
            return 200, self.registry.api_versions(f"127.0.0.1:{c.port}")
        if path == "/apis":
            return 200, self.registry.api_group_list()
        segs = [s for s in path.split("/") if s]
        if segs == ["api", "v1"] or (len(segs) == 3 and segs[0] == "apis"):
            group, version = ("", "v1") if segs[0] == "api" else (segs[1], segs[2])
            doc = self.registry.resource_list(group, version)
            if doc is None:
                raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
            return 200, doc
        res, ns, name, sub = self.route(path)
        if res is None:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
        payload = json.loads(body) if body and ("json" in ctype or not ctype) and not (sub or "").startswith("instantiatebinary") else None
        if sub:
            return c.subresource(method, res, ns, name, sub, query, payload, body)
        if method == "GET" and name is None:
            items, rv = self.store.list(res, ns, query.get("labelSelector", ""), query.get("fieldSelector", ""))
            return 200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                         "metadata": {"resourceVersion": str(rv)}, "items": items}
        if method == "GET":
            return 200, self.store.get(res, ns, name)
        if method == "POST" and name is None:
            return 201, c.admit(res, ns, payload or {})
        if method == "PUT" and name:
            return 200, self.store.replace(res, ns, name, payload or {})
        if method == "PATCH" and name:
            return 200, self.patch(res, ns, name, payload, ctype)
        if method == "DELETE" and name:
            obj = self.store.delete(res, ns, name)
            if query.get("propagationPolicy") in ("Background", "Foreground"):
                c.controllers.delete_dependents(obj)
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": {"name": name, "group": res.group, "kind": res.plural, "uid": obj["metadata"]["uid"]}}
        raise ApiError(405, "MethodNotAllowed", f"{method} {path} is not supported")

    def patch(self, res, ns, name, payload, ctype: str) -> dict:
        def apply(obj: dict) -> None:
            new = json_patch(obj, payload) if "json-patch" in ctype else merge_patch(obj, payload)
            obj.clear()
            obj.update(new)

        return self.store.mutate(res, ns, name, apply)
