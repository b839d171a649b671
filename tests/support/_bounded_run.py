"""Run a child process the tests wait for, bounded by lack of progress instead of a wall-clock total.

A loaded CI runner makes every child slower, so `subprocess.run(..., timeout=120)` fails there
while nothing is wrong. Here a child is given up on only when it has neither written output nor
used CPU (itself and its descendants) for `stall_s` seconds: a hung child is still caught, a
slow one is waited for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

STALL_S = 120.0
_TICKS = os.sysconf("SC_CLK_TCK")


class Stalled(subprocess.TimeoutExpired):
    """The child made no progress (no output, no CPU) for stall_s seconds."""

    def __str__(self) -> str:
        return f"{self.cmd!r} made no progress (no output, no CPU) for {self.timeout:.0f} s"


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used by pid and its descendants (living, and reaped ones via cutime/cstime)."""
    tree, total, todo = _children(), 0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        todo.extend(tree.get(p, []))
    return total / _TICKS


def run_bounded(cmd: list[str], *, stall_s: float = STALL_S, capture_output: bool = True, text: bool = True,
        input: str | bytes | None = None, **popen_kw) -> subprocess.CompletedProcess:
    """subprocess.run's contract (check is up to the caller), with a progress bound for `timeout`."""
    popen_kw.pop("timeout", None)
    pipe = subprocess.PIPE if capture_output else None
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=pipe, stderr=pipe, start_new_session=True, **popen_kw)
    last = [time.monotonic()]
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}

    def pump(stream, key: str) -> None:
        for data in iter(lambda: stream.read1(65536), b""):
            chunks[key].append(data)
            last[0] = time.monotonic()

    readers = [threading.Thread(target=pump, args=(s, k), daemon=True)
               for s, k in ((proc.stdout, "out"), (proc.stderr, "err")) if s is not None]
    for r in readers:
        r.start()
    if input is not None:
        assert proc.stdin is not None
        proc.stdin.write(input.encode() if isinstance(input, str) else input)
        proc.stdin.close()
    cpu = 0.0
    while True:
        try:
            proc.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            pass
        now_cpu = tree_cpu_s(proc.pid)
        if now_cpu > cpu:
            cpu, last[0] = now_cpu, time.monotonic()
        if time.monotonic() - last[0] > stall_s:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            for r in readers:
                r.join()
            raise Stalled(cmd, stall_s, b"".join(chunks["out"]), b"".join(chunks["err"]))
    for r in readers:
        r.join()
    out, err = (b"".join(chunks[k]) if capture_output else None for k in ("out", "err"))
    if text and capture_output:
        out, err = out.decode(errors="replace"), err.decode(errors="replace")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
