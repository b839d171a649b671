"""Disk full while writing results (a real tmpfs of a few KiB): one clear error, earlier data intact."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from results.schema import CriterionResult, RunInfo, Sample
from results.store import ResultsWriteError, RunWriter, load_runs
from tests.support._bounded_run import run_bounded


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k,nr_inodes=64", "okdbench-diskfull", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _sample(run_id: str, i: int) -> Sample:
    # Labels make each record ~300 bytes, so the disk fills after a hundred or so.
    return Sample(run_id=run_id, platform="kvm", cluster="c", suite="s", metric="m", value=float(i), unit="s",
                  labels={"pad": "x" * 200, "i": i})


def _fill(writer: RunWriter, run_id: str) -> tuple[int, ResultsWriteError]:
    returned = 0
    for i in range(100000):
        try:
            writer.record_sample(_sample(run_id, i))
        except ResultsWriteError as exc:
            return returned, exc
        returned += 1
    raise AssertionError("the small disk never filled up")


def test_disk_full_while_appending(small_disk):
    run_id = f"full-{uuid.uuid4().hex[:6]}"
    writer = RunWriter(small_disk, RunInfo(run_id=run_id, platform="kvm", cluster="c", started="2026-01-01T00:00:00Z"))
    returned, exc = _fill(writer, run_id)
    msg = str(exc)
    assert "\n" not in msg and "No space left on device" in msg and "samples.jsonl" in msg
    assert returned > 10
    rs = load_runs([small_disk / run_id])
    assert sorted(rs.samples["value"].astype(int)) == list(range(returned)), "a sample record returned for is missing"
    assert rs.warnings == [], "a failed append must not leave a torn line behind"
    # Still full: the criterion and the final status fail with the same kind of one-line error ...
    with pytest.raises(ResultsWriteError) as exc2:
        writer.record_criterion(CriterionResult(run_id=run_id, platform="kvm", criterion="c", status="passed"))
    assert "\n" not in str(exc2.value)
    with pytest.raises(ResultsWriteError) as exc3:
        writer.finish("complete")
    assert "\n" not in str(exc3.value)
    # ... and nothing already written is damaged.
    rs = load_runs([small_disk / run_id])
    assert len(rs.samples) == returned and rs.runs[0].status == "incomplete"


def test_space_freed_later_appends_cleanly(small_disk):
    run_id = f"free-{uuid.uuid4().hex[:6]}"
    writer = RunWriter(small_disk, RunInfo(run_id=run_id, platform="kvm", cluster="c", started="2026-01-01T00:00:00Z"))
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * 32768)
    returned, _ = _fill(writer, run_id)
    ballast.unlink()
    writer.record_sample(_sample(run_id, 99999))
    writer.finish("complete")
    rs = load_runs([small_disk / run_id])
    assert len(rs.samples) == returned + 1 and rs.warnings == []
    assert rs.runs[0].status == "complete"


def test_disk_full_during_a_suites_session_is_one_clear_error(small_disk, tmp_path, monkeypatch):
    import sys

    from tests.nightly_support import make_suites_root, write_spec

    root = make_suites_root(tmp_path / "checkout")
    spec = write_spec(tmp_path / "kvm.yaml")
    side = tmp_path / "recorded.txt"
    env = {**os.environ, "NIGHTLY_STREAM": str(side), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = run_bounded([sys.executable, "-m", "pytest", "suites/", "-p", "no:cacheprovider", "--platform", "kvm",
                           "--spec", str(spec), "--results-dir", str(small_disk)],
                          cwd=root, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "No space left on device" in out
    assert "Traceback" not in out and "INTERNALERROR" not in out
    rs = load_runs([small_disk])
    recorded = [int(v) for v in side.read_text().split()]
    assert set(recorded) <= set(rs.samples[rs.samples["metric"] == "stream.value"]["value"].astype(int))
    assert rs.runs[0].status == "incomplete"
