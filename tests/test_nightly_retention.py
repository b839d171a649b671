"""Retention: raw JSONL of the newest N runs kept, Parquet always kept, no data lost."""

from __future__ import annotations

import pandas as pd

from okdbench.nightly.retention import apply_retention
from results.schema import RunInfo, Sample
from results.store import RunWriter, load_runs


def _run(results, run_id, started, n, finish=True):
    w = RunWriter(results, RunInfo(run_id=run_id, platform="kvm", cluster="c", started=started))
    for i in range(n):
        w.record_sample(Sample(run_id=run_id, platform="kvm", cluster="c", suite="s", metric="m", value=float(i), unit="s"))
    if finish:
        w.finish("complete")
    return w


def _frame(results):
    rs = load_runs([results])
    return rs.samples.sort_values(["run_id", "value"]).reset_index(drop=True)


def test_keeps_newest_jsonl_and_every_parquet(tmp_path):
    results = tmp_path / "results"
    # run ids deliberately not in time order: 'started' decides
    for i, rid in enumerate(["d", "a", "c", "b", "e"]):
        _run(results, f"run-{rid}", f"2026-01-0{i + 1}T01:00:00Z", 4)
    before = _frame(results)
    res = apply_retention(results, keep_jsonl_runs=2)
    assert sorted(p.split("/")[-2] for p in res.pruned) == sorted(["run-d", "run-d", "run-a", "run-a", "run-c", "run-c"])
    assert res.freed_bytes > 0
    for rid in "dacbe":
        assert (results / f"run-{rid}" / "samples.parquet").exists()
    for rid in "be":
        assert (results / f"run-{rid}" / "samples.jsonl").exists()
    pd.testing.assert_frame_equal(before, _frame(results))
    # idempotent
    assert apply_retention(results, keep_jsonl_runs=2).pruned == []


def test_incomplete_run_keeps_its_jsonl(tmp_path):
    results = tmp_path / "results"
    _run(results, "run-old-killed", "2026-01-01T01:00:00Z", 3, finish=False)
    for i in range(3):
        _run(results, f"run-{i}", f"2026-01-0{i + 2}T01:00:00Z", 2)
    res = apply_retention(results, keep_jsonl_runs=1)
    assert (results / "run-old-killed" / "samples.jsonl").exists()
    assert str(results / "run-old-killed" / "samples.jsonl") in res.kept_unsafe
    assert len(load_runs([results]).samples) == 3 + 3 * 2


def test_damaged_parquet_keeps_jsonl(tmp_path):
    results = tmp_path / "results"
    _run(results, "run-0", "2026-01-01T01:00:00Z", 5)
    _run(results, "run-1", "2026-01-02T01:00:00Z", 5)
    (results / "run-0" / "samples.parquet").write_bytes(b"PAR1 not really")
    res = apply_retention(results, keep_jsonl_runs=1)
    assert (results / "run-0" / "samples.jsonl").exists()
    assert not any("run-0/samples.jsonl" in p for p in res.pruned)


def test_missing_results_dir_is_fine(tmp_path):
    assert apply_retention(tmp_path / "nope", 3).pruned == []
