"""okdbench demo --load-host's CPU burner: starts stress-ng in its own session, stops it and its workers."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from okdbench import hostload


def _workers(pgid: int) -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.getpgid(int(d)) == pgid:
                    pids.append(int(d))
            except ProcessLookupError:
                pass
    return pids


def test_burner_runs_its_workers_and_stop_ends_them_all():
    if shutil.which("stress-ng") is None:
        pytest.skip("stress-ng not installed (Debian package stress-ng)")
    proc = hostload.start(workers=2)
    try:
        while len(_workers(proc.pid)) < 3:  # stress-ng and its two workers; bounded by the burner staying alive
            assert proc.poll() is None, "stress-ng exited on its own"
            time.sleep(0.1)
    finally:
        hostload.stop(proc)
    assert proc.poll() is not None
    deadline_polls = 100
    while _workers(proc.pid) and deadline_polls:
        time.sleep(0.1)
        deadline_polls -= 1
    assert _workers(proc.pid) == []
    hostload.stop(proc)  # stopping twice is harmless
