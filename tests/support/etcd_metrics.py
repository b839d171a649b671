"""A scripted 3-member etcd's /metrics on loopback, driven by one master VM's lifecycle; every scrape logged.

The members' leader series (is_leader, has_leader, leader_changes_seen_total, per pod) are served
with explicit timestamps (the moment of serving), so the test knows exactly which samples the
real Prometheus scraping it stored. The disrupted master's member leads at first:
- down (pause, power-off, reset): its member stops answering; if it led, the others report no
  leader for ELECT_S, then the next member leads and every member still up counts one change;
- up: its member answers again as a follower; resumed (a freeze), it counts the change it missed;
  restarted (reset, power-on), its counter starts over at 1 (its first sight of the leader).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ELECT_S = 1.5  # leaderless after the leader's VM stopped: several 0.25 s scrapes see it


@dataclass(frozen=True)
class Member:
    up: bool
    is_leader: int
    has_leader: int
    changes: int


class EtcdScript:
    def __init__(self, fc, members: list[str], disrupted: str):
        self.fc, self.disrupted = fc, disrupted
        self.lock = threading.Lock()
        self.members = {m: Member(True, int(m == disrupted), 1, 1) for m in members}
        self.flips: list[tuple[float, str]] = []  # (when, new leader)
        self.scrapes: list[tuple[int, dict[str, Member]]] = []  # (timestamp ms, what was served)
        self.down_at = 0.0
        self._server: ThreadingHTTPServer | None = None

    # ---------------------------------------------------------------- the VM's lifecycle
    def down(self) -> None:
        with self.lock:
            self.down_at = time.time()
            led = self.members[self.disrupted].is_leader == 1
            self.members[self.disrupted] = Member(False, 0, 0, self.members[self.disrupted].changes)
            if led:
                for m, s in self.members.items():
                    if s.up:
                        self.members[m] = Member(True, 0, 0, s.changes)
        if led:
            self.fc.at(ELECT_S, self._elect)

    def _elect(self) -> None:
        with self.lock:
            new = next(m for m, s in sorted(self.members.items()) if s.up)
            for m, s in self.members.items():
                if s.up:
                    self.members[m] = Member(True, int(m == new), 1, s.changes + 1)
            self.flips.append((time.time(), new))

    def up(self, restart: bool = False) -> None:
        with self.lock:
            s = self.members[self.disrupted]
            missed = sum(1 for t, _ in self.flips if t >= self.down_at)  # changes made while it was away
            self.members[self.disrupted] = Member(True, 0, 1, 1 if restart else s.changes + missed)

    def reset(self) -> None:
        self.down()
        self.fc.at(2.0, lambda: self.up(restart=True))

    # ---------------------------------------------------------------- /metrics
    def text(self) -> bytes:
        with self.lock:
            now_ms = int(time.time() * 1000)
            snap = dict(self.members)
            self.scrapes.append((now_ms, snap))
        lines = ["# TYPE etcd_server_is_leader gauge", "# TYPE etcd_server_has_leader gauge",
                 "# TYPE etcd_server_leader_changes_seen_total counter"]
        for m, s in sorted(snap.items()):
            if not s.up:
                continue
            lab = f'{{namespace="openshift-etcd",pod="{m}"}}'
            lines += [f"etcd_server_is_leader{lab} {s.is_leader} {now_ms}", f"etcd_server_has_leader{lab} {s.has_leader} {now_ms}",
                      f"etcd_server_leader_changes_seen_total{lab} {s.changes} {now_ms}"]
        return ("\n".join(lines) + "\n").encode()

    def start(self):
        """Serve /metrics on a loopback port; the Endpoint a Prometheus scrapes."""
        from tests.support.prometheus import Endpoint  # not at import: conftest loads tests/support/ as plugins in order

        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = script.text()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_a) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        address = f"127.0.0.1:{self._server.server_address[1]}"
        return Endpoint(address, f"http://{address}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
