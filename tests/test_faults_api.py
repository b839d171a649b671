"""API server answering 5xx / resetting connections for 10 % of requests: the suites retry
(bounded backoff), every criterion keeps its true status, no sample is lost or doubled, and
the report's verdicts and validation matrix match those of a fault-free run."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from reports.analysis import build_report
from results.store import load_runs
from tests.nightly_support import seed_history
from tests.support.fakekube import run_suites, started

ARGS = ("--builds", "1", "--pods", "2", "--api-calls", "5", "--wait-ready", "10", "--workload-timeout", "60",
        "--label", "kvm")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    def one(faulty: bool):
        with started(tmp_path_factory.mktemp("fake-okd")) as fc:
            if faulty:
                fc.set_faults(error_ratio=0.05, reset_ratio=0.05, seed=11, include_watches=True)
            run = run_suites(fc, tmp_path_factory.mktemp("results"), *ARGS)
            requests = len(fc.requests)
            return run, fc.faults.injected_errors, fc.faults.injected_resets, requests

    with ThreadPoolExecutor(2) as pool:
        clean, faulty = pool.map(one, [False, True])
    return clean, faulty


def _statuses(run):
    c = run.runs.criteria
    return {name: sorted(g["status"]) for name, g in c.groupby("criterion")}


def test_faults_were_really_injected(runs):
    _, (run, errors, resets, requests) = runs
    assert errors > 0 and resets > 0
    assert (errors + resets) / requests > 0.05, (errors, resets, requests)


def test_criteria_keep_their_true_status(runs):
    (clean, *_), (faulty, *_) = runs
    assert clean.proc.returncode == 0, clean.output[-2000:]
    assert "Traceback" not in faulty.output
    assert _statuses(faulty) == _statuses(clean)
    assert faulty.runs.runs[0].status == "complete"


def test_no_sample_lost_or_doubled(runs):
    (clean, *_), (faulty, *_) = runs
    count = lambda r: r.runs.samples.groupby("metric", observed=True).size().to_dict()  # noqa: E731
    assert count(faulty) == count(clean)


def test_report_matches_fault_free_run(runs, tmp_path):
    (clean, *_), (faulty, *_) = runs
    baseline = tmp_path / "baseline"
    seed_history(baseline, 3, {"vsphere": [10.0, 10.5, 9.8]})

    def report(run):
        rs = load_runs([baseline, run.run_dir])
        return build_report(rs, baseline="vsphere", candidate="kvm", with_charts=False)

    a, b = report(clean), report(faulty)
    assert [(r.metric, r.verdict) for r in a.summary] == [(r.metric, r.verdict) for r in b.summary]
    matrix = lambda rep: {(row.criterion, p): cell.status for row in rep.criteria for p, cell in row.cells.items()}  # noqa: E731
    assert matrix(a) == matrix(b)
