"""Containers the fake runs for real: a pod's command executed as a process on this machine.

What a kubelet does for the programs that opt in (tests/fakekube/programs.py): the container's
command with the pod's env (and nothing of this machine's but PATH), its stdout appended to the
pod's log as it comes, its exit code ending the pod. The pod's network is the fake's Service
network (tests/fakekube/services.py) through `http_proxy`, on loopback. Deleting the pod (or its
namespace, or stopping the cluster) kills the process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tests.fakekube.resources import Resource

if TYPE_CHECKING:
    from tests.fakekube.cluster import FakeCluster

MAX_LOG = 8 << 20  # what one pod's log may grow to here (a runaway program is cut, not the test machine)


@dataclass(frozen=True)
class Started:
    namespace: str
    pod: str
    node: str
    argv: tuple[str, ...]


class Processes:
    def __init__(self, cluster: "FakeCluster"):
        self.c = cluster
        self.started: list[Started] = []
        self._procs: dict[tuple[str, str], subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._home = tempfile.mkdtemp(prefix="fakekube-home-", dir=cluster.workdir)
        cluster.store.hooks.append(self.on_write)

    def run(self, pod: dict) -> None:
        """Start the pod's first container's command; its output becomes the pod's log."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        container = pod["spec"]["containers"][0]
        argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
        env = {str(e["name"]): str(e.get("value", "")) for e in container.get("env") or [] if "name" in e}
        env.update(PATH=os.environ.get("PATH", "/usr/bin:/bin"), HOME=self._home,
                   http_proxy=self.c.service_network.proxy_url)
        try:
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:  # what a runtime reports for a missing executable
            self.c.logs[(ns, name)] = f"exec {argv[:1]}: {exc.strerror}\n"
            self.c.controllers.terminate(ns, name, 127)
            return
        with self._lock:
            self._procs[(ns, name)] = proc
            self.started.append(Started(ns, name, pod["spec"].get("nodeName", ""), tuple(argv)))
        threading.Thread(target=self._follow, args=(ns, name, proc), daemon=True, name=f"pod {ns}/{name}").start()

    def _follow(self, ns: str, name: str, proc: subprocess.Popen) -> None:
        size = 0
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            if size + len(line) <= MAX_LOG:
                size += len(line)
                # A new str each time: readers (the log subresource) see a whole value, never a torn one.
                self.c.logs[(ns, name)] = self.c.logs.get((ns, name), "") + line.decode("utf-8", "replace")
        code = proc.wait()
        with self._lock:
            mine = self._procs.pop((ns, name), None) is proc
        if mine and not self.c.server.stopping.is_set():
            self.c.controllers.terminate(ns, name, code)

    def _kill(self, key: tuple[str, str]) -> None:
        with self._lock:
            proc = self._procs.pop(key, None)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the shell and what it started
            except ProcessLookupError:
                pass

    def alive(self) -> list[tuple[str, str]]:
        with self._lock:
            return [k for k, p in self._procs.items() if p.poll() is None]

    def on_write(self, type_: str, res: Resource, obj: dict) -> None:
        if res.kind == "Pod" and type_ == "DELETED":
            self._kill((obj["metadata"]["namespace"], obj["metadata"]["name"]))
        elif res.kind == "Namespace" and type_ == "DELETED":
            for key in [k for k in list(self._procs) if k[0] == obj["metadata"]["name"]]:
                self._kill(key)

    def stop(self) -> None:
        for key in list(self._procs):
            self._kill(key)
