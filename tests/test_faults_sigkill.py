"""SIGKILL at a random point (10 trials): nothing `record` returned for is lost, the run reads
incomplete, the next nightly takes the lock over and its report lists the killed run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path


from okdbench.nightly.config import load_config
from okdbench.nightly.runner import run_nightly
from results.store import load_runs
from tests.nightly_support import seed_history, write_config
from tests.support._bounded_run import STALL_S, tree_cpu_s

ROOT = Path(__file__).resolve().parent.parent
TRIALS = 10


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _start_trial(tmp: Path, trial: int) -> dict:
    seed_history(tmp / "results", 1, {"kvm": [10.0], "vsphere": [10.0]})
    cfg = write_config(tmp)
    side = tmp / "recorded.txt"
    env = {**os.environ, "NIGHTLY_STREAM": str(side)}
    proc = subprocess.Popen([sys.executable, "-m", "okdbench", "nightly", "--config", str(cfg), "--only", "kvm", "--quiet"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"tmp": tmp, "cfg": cfg, "side": side, "proc": proc, "trial": trial, "t0": time.monotonic()}


def test_sigkill_at_random_points(tmp_path, monkeypatch):
    rng = random.Random(20261127)
    trials = [_start_trial(tmp_path / f"trial{i}", i) for i in range(TRIALS)]
    for t in trials:
        # Most trials die while samples stream in (the interesting case); two die at any moment,
        # possibly before pytest even started or while it starts up.
        anywhere = t["trial"] >= TRIALS - 2
        pid_file = Path(str(t["side"]) + ".pid")
        if anywhere:
            time.sleep(rng.uniform(0.0, 3.0))
        else:
            # Wait while the nightly (and the pytest it starts) makes progress: a loaded machine
            # only delays the moment samples start streaming.
            cpu, since = -1.0, time.monotonic()
            while not (pid_file.exists() and t["side"].exists()) and time.monotonic() - since < STALL_S:
                assert t["proc"].poll() is None, "the nightly ended before it was killed"
                if (now := tree_cpu_s(t["proc"].pid)) > cpu:
                    cpu, since = now, time.monotonic()
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.4))
        if pid_file.exists():
            _kill(int(pid_file.read_text()))  # the run process (pytest session) ...
        _kill(t["proc"].pid)  # ... and the nightly holding the lock
        t["proc"].wait()

    checked = 0
    for t in trials:
        results = t["tmp"] / "results"
        killed = [d for d in results.iterdir() if d.is_dir() and d.name.endswith(tuple("0123456789abcdef")) and "-" in d.name
                  and not d.name.endswith(("-kvm", "-vsphere"))]
        if not killed:
            continue  # killed before pytest created its run folder
        rs = load_runs(killed)
        assert len(rs.runs) == 1 and rs.runs[0].status in ("incomplete", "aborted")
        t["killed_run"] = rs.runs[0].run_id
        recorded = t["side"].read_text().split() if t["side"].exists() else []
        stream = rs.samples[rs.samples["metric"] == "stream.value"]["value"]
        on_disk = set(stream.astype(int))
        missing = [int(v) for v in recorded if int(v) not in on_disk]
        assert not missing, f"trial {t['trial']}: samples returned by record but not in results: {missing[:5]}"
        if recorded:
            checked += 1
    assert checked >= TRIALS - 2

    # The next nightly: lock recovered, report lists the killed run as incomplete.
    t = next(t for t in trials if "killed_run" in t)
    monkeypatch.delenv("NIGHTLY_STREAM", raising=False)
    monkeypatch.delenv("NIGHTLY_FAIL", raising=False)
    code, summary = run_nightly(load_config(t["cfg"]), only=["kvm"])
    assert code == 0, summary["errors"]
    assert any("took over a stale lock" in w for w in summary["warnings"])
    assert t["killed_run"] in summary["incomplete_runs"]
    html = Path(summary["report"]).read_text()
    assert t["killed_run"] in html and "incomplete" in html
