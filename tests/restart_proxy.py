"""A proxy in front of a real daemon that can "restart" it: drop every connection, refuse new ones
for a while, then accept again, while the daemon behind it (and its state) survives.

Used to inject a vCenter or libvirtd restart mid-provisioning without restarting the shared one.
"""

from __future__ import annotations

import socket
import threading


class RestartingProxy:
    """Subclasses say how to listen and how to reach the daemon; `forward` may inspect traffic."""

    def __init__(self) -> None:
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._back = threading.Event()
        self.up = threading.Event()
        self._listen()

    # --- what differs between daemons

    def server_socket(self) -> socket.socket:
        raise NotImplementedError

    def upstream_socket(self) -> socket.socket:
        raise NotImplementedError

    def forward(self, client: socket.socket, upstream: socket.socket) -> None:
        """Client to daemon; override to watch or cut the stream."""
        self.pump(client, upstream)

    # --- the machinery

    def _listen(self) -> None:
        self._srv = self.server_socket()
        self.up.set()
        threading.Thread(target=self._accept, args=(self._srv,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            try:
                up = self.upstream_socket()
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, up]
            threading.Thread(target=self.forward, args=(client, up), daemon=True).start()
            threading.Thread(target=self.pump, args=(up, client), daemon=True).start()

    def pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self.shut(src, dst)

    @staticmethod
    def shut(*socks: socket.socket) -> None:
        # shutdown() (not close() alone) also wakes the threads blocked in recv()/accept() on them.
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _stop_listening(self) -> None:
        self.up.clear()
        self.shut(self._srv)
        self._srv.close()

    def restart(self, down_s: float | None) -> None:
        """Drop every connection, as when the daemon's process exits; refuse new ones for down_s
        seconds (None: until come_back()), then accept again at the same address."""
        self._stop_listening()
        with self._lock:
            conns, self._conns = self._conns, []
        self.shut(*conns)
        for s in conns:
            s.close()
        self._back.wait(down_s)
        self._listen()

    def come_back(self) -> None:
        self._back.set()

    def close(self) -> None:
        self._back.set()
        self._stop_listening()
