"""One nightly at a time: an flock'ed lock file that also says who holds it.

The kernel releases an flock when its holder dies, however it dies (SIGKILL, OOM), so a lock
left behind by a dead nightly is never an obstacle. The file's content (pid, process start
time, host, when) only explains: who holds a live lock, and whose lock was stale when taken
over. The start time guards against pid reuse when we judge whether the recorded holder is
still the same process.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from plumbing.errors import UserError
from plumbing.safe_load import read_json_file
from results.schema import iso, utcnow

log = logging.getLogger("okdbench.nightly.lock")


class LockHeld(UserError):
    """Another nightly run holds the lock (exit 2)."""


def process_start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (/proc/PID/stat field 22), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Holder:
    pid: int
    start_ticks: int | None
    host: str
    boot_id: str
    since: str

    def alive(self) -> bool:
        """Is the recorded process still running (same host, same boot, same start time)?"""
        if self.host != socket.gethostname() or (self.boot_id and self.boot_id != _boot_id()):
            return False
        return process_start_ticks(self.pid) == self.start_ticks and self.start_ticks is not None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since}"


def read_holder(path: Path) -> Holder | None:
    try:
        data = read_json_file(path, "lock", "a lock file", ValueError, max_bytes=64 * 2**10)
        return Holder(
            pid=int(data["pid"]),
            start_ticks=data.get("start_ticks"),
            host=str(data.get("host", "")),
            boot_id=str(data.get("boot_id", "")),
            since=str(data.get("since", "?")),
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None


class NightlyLock:
    """Context manager: `with NightlyLock(path): ...`. Raises LockHeld when another run holds it."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._fd: int | None = None
        self.took_over: Holder | None = None

    def acquire(self) -> "NightlyLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_CLOEXEC (Python's default) keeps the fd out of the suites' subprocesses: an orphaned
            # child must not keep the lock alive after the nightly itself died.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"lock_file: cannot create {self.path} ({exc.strerror}); pick a writable path") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read_holder(self.path)
            who = holder.describe() if holder else "another process"
            raise LockHeld(
                f"another nightly run holds {self.path} ({who}); wait for it to finish, or remove the file if that process is gone"
            ) from None
        previous = read_holder(self.path)
        if previous is not None and previous.pid != os.getpid():
            # The file names a holder but the flock was free: that holder died without cleaning up.
            state = "still running but not holding the lock" if previous.alive() else "no longer running"
            log.warning("taking over stale nightly lock %s from %s (%s)", self.path, previous.describe(), state)
            self.took_over = previous
        me = {
            "pid": os.getpid(),
            "start_ticks": process_start_ticks(os.getpid()),
            "host": socket.gethostname(),
            "boot_id": _boot_id(),
            "since": iso(utcnow()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            # Empty the file before unlocking: the next run then sees a clean lock, not a stale one.
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "NightlyLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
