"""The results contract round-trips, survives a SIGKILLed writer, and reads corrupt folders without exceptions."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from results.schema import CRITERIA_SCHEMA, SAMPLES_SCHEMA, CriterionResult, RunInfo, Sample
from results.store import RunWriter, load_runs, new_run_id

ROOT = Path(__file__).resolve().parent.parent

EXPECTED_DTYPES = {
    "run_id": "string", "platform": "string", "cluster": "string", "suite": "string", "metric": "string",
    "value": "float64", "unit": "string", "better": "string", "repetition": "int64",
    "timestamp": "datetime64[us, UTC]", "labels": "string",
}


def _info(run_id="r1", platform="kvm"):
    return RunInfo(run_id=run_id, platform=platform, cluster="c1", started="2026-11-27T00:00:00Z")


def test_run_ids_sort_by_time_and_are_unique():
    ids = [new_run_id() for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(len(i) == len(ids[0]) for i in ids)


def test_written_run_reads_back_with_documented_dtypes(tmp_path):
    w = RunWriter(tmp_path, _info())
    for i in range(5):
        w.record_sample(Sample("r1", "kvm", "c1", "builds", "build.duration", 100.0 + i, "s", repetition=i,
                               labels={"node": "worker-0", "strategy": "docker"}))
    w.record_criterion(CriterionResult("r1", "kvm", "install", "passed", "", 1.5))
    w.finish("complete")
    rs = load_runs([tmp_path])
    assert len(rs.samples) == 5
    assert {c: str(t) for c, t in rs.samples.dtypes.items()} == EXPECTED_DTYPES
    assert list(rs.criteria.columns) == CRITERIA_SCHEMA.names
    assert json.loads(rs.samples["labels"].iloc[0]) == {"node": "worker-0", "strategy": "docker"}
    assert rs.samples["repetition"].tolist() == [0, 1, 2, 3, 4]
    assert rs.runs[0].status == "complete" and rs.runs[0].finished
    assert (tmp_path / "r1" / "samples.parquet").exists()


def test_jsonl_and_parquet_forms_read_the_same(tmp_path):
    w = RunWriter(tmp_path, _info())
    w.record_sample(Sample("r1", "kvm", "c1", "api", "api.latency.p99", 12.5, "ms", labels={"verb": "list"}))
    # Before finish: JSONL only, status running -> reported incomplete.
    live = load_runs([tmp_path / "r1"])
    assert live.runs[0].status == "incomplete"
    w.finish("complete")
    done = load_runs([tmp_path / "r1"])
    cols = SAMPLES_SCHEMA.names
    pd.testing.assert_frame_equal(live.samples[cols], done.samples[cols])


def test_truncated_last_line_is_skipped_with_warning(tmp_path, caplog):
    w = RunWriter(tmp_path, _info())
    w.record_sample(Sample("r1", "kvm", "c1", "api", "m", 1.0, "ms"))
    with open(tmp_path / "r1" / "samples.jsonl", "ab") as fh:
        fh.write(b'{"run_id": "r1", "metric": "m", "val')  # a writer killed mid-line
    rs = load_runs([tmp_path])
    assert len(rs.samples) == 1
    assert any("last line" in w for w in rs.warnings)


def test_unknown_extra_columns_are_kept(tmp_path):
    w = RunWriter(tmp_path, _info())
    w.record_sample(Sample("r1", "kvm", "c1", "api", "m", 1.0, "ms"))
    with open(tmp_path / "r1" / "samples.jsonl", "ab") as fh:
        row = Sample("r1", "kvm", "c1", "api", "m", 2.0, "ms").to_json() | {"host_load": "0.7"}
        fh.write((json.dumps(row) + "\n").encode())
    w.finish("complete")
    rs = load_runs([tmp_path])
    assert "host_load" in rs.samples.columns
    assert rs.samples["host_load"].tolist()[1] == "0.7"


def test_unreadable_run_folder_is_skipped_not_raised(tmp_path):
    good = RunWriter(tmp_path, _info("good"))
    good.finish("complete")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    rs = load_runs([tmp_path])
    assert [r.run_id for r in rs.runs] == ["good"]
    assert rs.skipped and "bad" in rs.skipped[0]


def test_run_id_collision_is_one_clear_error(tmp_path):
    RunWriter(tmp_path, _info())
    with pytest.raises(Exception) as exc:
        RunWriter(tmp_path, _info())
    assert "--run-id" in str(exc.value) and "\n" not in str(exc.value)


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from results.schema import RunInfo, Sample
    from results.store import RunWriter
    w = RunWriter(sys.argv[1], RunInfo(run_id="killed", platform="kvm", cluster="c", started="2026-11-27T00:00:00Z"))
    i = 0
    while True:
        w.record_sample(Sample("killed", "kvm", "c", "s", "m", float(i), "ms", repetition=i))
        print(i, flush=True)  # only after record returned
        i += 1
    """
)


def test_sigkilled_writer_loses_nothing_it_returned(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True)
    acknowledged = []
    for line in proc.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) >= 200:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    acknowledged.extend(int(l) for l in proc.stdout.read().split())
    rs = load_runs([tmp_path])
    got = set(rs.samples["repetition"].tolist())
    assert set(acknowledged) <= got
    assert rs.runs[0].status == "incomplete"


@pytest.mark.parametrize("statuses,outcome", [(["error", "error"], "failed"), (["error", "skipped"], "failed"),
                                              (["error", "passed"], "ok"), (["failed"], "ok"), ([], "ok")])
def test_a_run_whose_criteria_all_errored_reads_as_failed(tmp_path, statuses, outcome):
    from results.schema import FAILED_RUN_WARNING

    info = RunInfo(run_id=new_run_id(), platform="kvm", cluster="c", started="2026-01-01T00:00:00Z")
    w = RunWriter(tmp_path, info)
    for i, status in enumerate(statuses):
        w.record_criterion(CriterionResult(run_id=info.run_id, platform="kvm", criterion=f"c{i}", status=status,
                                           detail="setup: cannot reach the cluster"))
    w.finish("complete")
    run = load_runs([tmp_path]).runs[0]
    assert run.status == "complete" and run.outcome == outcome
    assert (FAILED_RUN_WARNING in run.warnings) == (outcome == "failed")
    from okdbench.nightly.runner import _runs_included  # what summary.json's runs_included / failed_runs come from

    assert [r["outcome"] for r in _runs_included(tmp_path)[0]] == [outcome]


def test_unreachable_cluster_session_is_a_failed_run_in_report_and_summary(tmp_path):
    """A real `pytest suites/` session against a cluster that cannot be reached: every criterion
    errors; run.json says outcome failed, the terminal says so, and the report lists it in its warnings."""
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                  "contexts: [{name: x, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t0123456789}}]\n"
                  "current-context: x\n")
    for platform in ("vsphere", "kvm"):
        proc = subprocess.run([sys.executable, "-m", "pytest", "suites/test_nodes.py", f"--platform={platform}",
                               "--kubeconfig", str(kc), "--results-dir", str(tmp_path / "results"), "-p", "no:cacheprovider",
                               "-q", "--wait-ready", "1"], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert "FAILED: every criterion errored" in proc.stdout, proc.stdout[-2000:]
    runs = load_runs([tmp_path / "results"]).runs
    assert [r.outcome for r in runs] == ["failed", "failed"]
    from okdbench.cli import main

    assert main(["report", str(tmp_path / "results"), "--baseline", "vsphere", "--candidate", "kvm", "--format", "json",
                 "--out", str(tmp_path / "r.json")]) == 0
    assert "run failed: every criterion it checked ended in error" in (tmp_path / "r.json").read_text()
