"""The tests' own progress bound: a silent child that computes is waited for, a hung one is not."""

from __future__ import annotations

import sys

import pytest

from tests.support._bounded_run import Stalled, run_bounded


def test_silent_child_using_cpu_outlives_the_stall_bound():
    # ~3 s of silent computation under a 1 s stall bound: CPU use is progress.
    code = "import time\nt=time.process_time()\nwhile time.process_time()-t<3: pass\nprint('done')"
    proc = run_bounded([sys.executable, "-c", code], stall_s=1.0)
    assert proc.returncode == 0 and proc.stdout == "done\n"


def test_child_that_keeps_writing_outlives_the_stall_bound():
    code = "import time,sys\nfor i in range(6):\n  print(i, flush=True); time.sleep(0.4)"
    proc = run_bounded([sys.executable, "-c", code], stall_s=1.0)
    assert proc.stdout.split() == [str(i) for i in range(6)]


def test_hung_child_is_killed_with_its_group():
    with pytest.raises(Stalled, match="made no progress"):
        run_bounded(["sh", "-c", "sleep 300 & sleep 300"], stall_s=1.0)
