"""Webhook notification against a real HTTP server on 127.0.0.1 that fails, hangs or refuses."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from okdbench.nightly.notify import post_summary


class Hook:
    """A webhook that answers `fail_first` requests with 500, then 200 (or `status` forever)."""

    def __init__(self, fail_first=0, status=None, hang=False):
        self.fail_first, self.status, self.hang = fail_first, status, hang
        self.bodies: list[dict] = []
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.bodies.append(json.loads(body))
                if hook.hang:
                    hook.release.wait(30)
                    return
                code = hook.status or (500 if len(hook.bodies) <= hook.fail_first else 200)
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T0KEN-s3cr3t-path"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook_factory():
    hooks = []

    def make(**kw):
        h = Hook(**kw)
        hooks.append(h)
        return h

    yield make
    for h in hooks:
        h.close()


def test_retries_until_delivered(hook_factory):
    hook = hook_factory(fail_first=2)
    delays = []
    assert post_summary(hook.url, {"verdict": "ok"}, retries=3, backoff=0.5, sleep=delays.append) is True
    assert len(hook.bodies) == 3 and hook.bodies[-1] == {"verdict": "ok"}
    assert delays == [0.5, 1.0]  # exponential backoff


def test_always_failing_gives_up_without_raising(hook_factory, caplog):
    hook = hook_factory(status=503)
    with caplog.at_level("INFO"):
        assert post_summary(hook.url, {"x": 1}, retries=2, backoff=0, sleep=lambda s: None) is False
    assert len(hook.bodies) == 3
    assert "not delivered after 3 attempt(s): HTTP 503" in caplog.text
    assert "T0KEN-s3cr3t-path" not in caplog.text  # the URL's path is a credential


def test_client_error_is_not_retried(hook_factory):
    hook = hook_factory(status=404)
    assert post_summary(hook.url, {}, retries=5, backoff=0, sleep=lambda s: None) is False
    assert len(hook.bodies) == 1


def test_hanging_webhook_times_out(hook_factory):
    hook = hook_factory(hang=True)
    assert post_summary(hook.url, {}, timeout=0.3, retries=1, backoff=0, sleep=lambda s: None) is False
    assert len(hook.bodies) == 2


def test_refused_connection_and_bad_tls_are_failures_not_errors(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert post_summary(f"http://127.0.0.1:{port}/x", {}, retries=1, backoff=0, sleep=lambda s: None) is False
    # https to a plain-HTTP port: TLS handshake fails; verification is on by default.
    assert post_summary(f"https://127.0.0.1:{port}/x", {}, retries=0, sleep=lambda s: None) is False
