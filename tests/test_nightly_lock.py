"""The nightly lock: overlapping runs refused, a dead holder's lock taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from okdbench.nightly.lock import LockHeld, NightlyLock, process_start_ticks, read_holder

ROOT = Path(__file__).resolve().parent.parent

HOLDER = """
import sys, time
from okdbench.nightly.lock import NightlyLock
lock = NightlyLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def _start_holder(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_run_is_refused_while_first_holds(tmp_path):
    path = tmp_path / "nightly.lock"
    holder = _start_holder(path)
    try:
        with pytest.raises(LockHeld) as exc:
            NightlyLock(path).acquire()
        msg = str(exc.value)
        assert f"pid {holder.pid}" in msg and "\n" not in msg
        assert exc.value.exit_code == 2
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_sigkilled_holder_is_taken_over(tmp_path, caplog):
    path = tmp_path / "nightly.lock"
    holder = _start_holder(path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert read_holder(path).pid == holder.pid  # the dead holder's record is still there
    with caplog.at_level("WARNING"), NightlyLock(path) as lock:
        assert lock.took_over is not None and lock.took_over.pid == holder.pid
        assert read_holder(path).pid == os.getpid()
    assert "taking over stale nightly lock" in caplog.text and str(holder.pid) in caplog.text


def test_stale_record_of_dead_pid_is_taken_over(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    path = tmp_path / "nightly.lock"
    path.write_text(json.dumps({"pid": dead.pid, "start_ticks": 12345, "host": socket.gethostname(),
                                "boot_id": "", "since": "2026-01-01T01:00:00Z"}))
    with NightlyLock(path) as lock:
        assert lock.took_over.pid == dead.pid and not lock.took_over.alive()


def test_pid_reuse_is_not_mistaken_for_the_holder(tmp_path):
    # Our own pid with another start time: a different process that happens to reuse the pid.
    path = tmp_path / "nightly.lock"
    ticks = process_start_ticks(os.getpid())
    path.write_text(json.dumps({"pid": 1, "start_ticks": (process_start_ticks(1) or 0) + 1,
                                "host": socket.gethostname(), "since": "x"}))
    assert not read_holder(path).alive()
    assert ticks is not None


def test_release_leaves_a_clean_file_and_relocks(tmp_path):
    path = tmp_path / "nightly.lock"
    with NightlyLock(path):
        pass
    assert path.read_text() == ""
    with NightlyLock(path) as lock:
        assert lock.took_over is None


def test_unwritable_lock_location_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(Exception) as exc:
        NightlyLock(blocker / "sub" / "nightly.lock").acquire()
    assert "lock_file:" in str(exc.value) and "\n" not in str(exc.value)
