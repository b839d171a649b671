"""A tiny HTTP server that hands the full bootstrap ignition to the bootstrap VM.

vSphere guestinfo holds too little for bootstrap.ign, so the bootstrap VM boots a pointer
ignition that merges this URL (verified by SHA-512, so a tampered or truncated file is refused).
Only that one file is served, from memory: the ignition directory also holds the admin
kubeconfig and must never be browsable.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from plumbing.errors import UserError
from provision.spec import ClusterSpec

log = logging.getLogger("okdbench.ignition")

PATH = "/bootstrap.ign"


class IgnitionServer:
    """Serves one ignition document at PATH until stopped. Use as a context manager."""

    def __init__(self, data: bytes, host: str, port: int = 0, path: str = PATH):
        self.data = data
        self.path = path
        self.sha512 = hashlib.sha512(data).hexdigest()
        self.fetches: list[str] = []  # client addresses, for "did the bootstrap VM ever ask?"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?", 1)[0] != server.path:
                    self.send_error(404)
                    return
                server.fetches.append(self.client_address[0])
                log.info("ignition: %s fetched %s (%d bytes)", self.client_address[0], server.path, len(server.data))
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.coreos.ignition+json")
                self.send_header("Content-Length", str(len(server.data)))
                self.end_headers()
                self.wfile.write(server.data)

            def do_HEAD(self) -> None:  # noqa: N802
                self.send_response(200 if self.path == server.path else 404)
                self.send_header("Content-Length", str(len(server.data)))
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # quiet: do_GET logs what matters
                log.debug("ignition http: " + format, *args)

        try:
            self._httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise UserError(f"vsphere.ignition_url: cannot listen on {host}:{port} ({exc.strerror}); "
                            "pick a free port on an address of this machine") from None
        self._httpd.daemon_threads = True
        self.host = host
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    def start(self) -> "IgnitionServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="ignition-server", daemon=True)
        self._thread.start()
        log.info("ignition: serving bootstrap ignition at %s", self.url)
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> "IgnitionServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _is_local(host: str) -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


def source_address_toward(target: str) -> str:
    """The local address the kernel would use to reach target. UDP connect only selects a route: no packet is sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((target, 9))
        return s.getsockname()[0]


def plan_server(spec: ClusterSpec) -> tuple[str, int, str] | None:
    """(bind host, port, path) okdbench should serve on, or None when vsphere.ignition_url is someone else's server."""
    vs = spec.vsphere
    assert vs is not None
    if vs.ignition_url:
        parts = urlsplit(vs.ignition_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(f"vsphere.ignition_url: {vs.ignition_url!r} is not an http(s) URL; "
                            "use e.g. http://198.18.0.1:8088/bootstrap.ign")
        if parts.scheme == "http" and _is_local(parts.hostname):
            return parts.hostname, parts.port or 80, parts.path or PATH
        return None
    gateway = spec.network.gateway or next(spec.network.machine_cidr.hosts())
    try:
        return source_address_toward(str(gateway)), 0, PATH
    except OSError:
        raise UserError(f"vsphere.ignition_url: no local address routes to {spec.network.machine_cidr}; set "
                        "vsphere.ignition_url to a URL the VMs can fetch bootstrap.ign from") from None
