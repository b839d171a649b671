"""The pytest plugin as a user meets it: `pytest suites/ --platform ...` in a subprocess."""

import os
import sys
import textwrap
from pathlib import Path

import pytest

from results.store import load_runs
from tests.support._bounded_run import run_bounded

ROOT = Path(__file__).resolve().parent.parent

SUITE = textwrap.dedent(
    """
    import pytest

    @pytest.mark.criterion("demo-pass")
    @pytest.mark.benchmark
    def test_measure(record):
        for i in range(3):
            record("demo.latency", 1.0 + i, "ms", node=f"worker-{i}")
        record("demo.throughput", 10.0, "MB/s", better="higher")

    @pytest.mark.criterion("demo-fail")
    def test_fails(note):
        note("checked 3 nodes")
        assert 1 + 1 == 3, "worker-2 is NotReady"

    @pytest.mark.criterion("demo-skip")
    def test_needs_cluster(cluster):
        pass

    @pytest.fixture
    def broken():
        raise RuntimeError("cannot reach the API")

    @pytest.mark.criterion("demo-error")
    def test_errors(broken):
        pass
    """
)


def run_pytest(args, cwd=ROOT, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return run_bounded([sys.executable, "-m", "pytest", "-p", "okdbench.plugin", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, **kw)


@pytest.fixture
def suite_file(tmp_path):
    path = tmp_path / "suite" / "test_demo_suite.py"
    path.parent.mkdir()
    path.write_text(SUITE)
    return path


def test_samples_and_criteria_round_trip(tmp_path, suite_file):
    out = run_pytest([str(suite_file), "--platform=kvm", "--label=kvm-tuned", "--repeat=4",
                      f"--results-dir={tmp_path / 'res'}", "--run-id=rt1", "-q"], cwd=suite_file.parent)
    assert out.returncode == 1, out.stdout + out.stderr  # one criterion fails on purpose
    rs = load_runs([tmp_path / "res"])
    assert len(rs.samples) == 4 * 4  # 4 samples per repetition, 4 repetitions
    assert sorted(set(rs.samples["repetition"])) == [0, 1, 2, 3]
    assert set(rs.samples["platform"]) == {"kvm-tuned"}
    assert set(rs.samples["suite"]) == {"demo_suite"}
    assert str(rs.samples["value"].dtype) == "float64"
    assert '{"node": "worker-2"}' in set(rs.samples["labels"])
    crit = {(r.criterion, r.status) for r in rs.criteria.itertuples()}
    assert crit == {("demo-pass", "passed"), ("demo-fail", "failed"), ("demo-skip", "skipped"), ("demo-error", "error")}
    details = dict(zip(rs.criteria["criterion"], rs.criteria["detail"]))
    assert details["demo-fail"] == "worker-2 is NotReady; checked 3 nodes"
    assert details["demo-skip"] == "no OKD cluster (pass --kubeconfig or an OKD --spec)"
    assert "cannot reach the API" in details["demo-error"]
    assert all("\n" not in d for d in details.values())
    info = rs.runs[0]
    assert info.status == "complete" and info.platform == "kvm-tuned" and info.hypervisor_platform == "kvm"


def test_suites_without_platform_is_one_line_error():
    out = run_bounded([sys.executable, "-m", "pytest", "suites/"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert lines == ["ERROR: --platform is required for suites/: pass --platform=kvm or --platform=vsphere"]
    assert "Traceback" not in out.stdout + out.stderr


def test_interrupted_session_is_aborted(tmp_path):
    suite = tmp_path / "test_interrupt.py"
    suite.write_text("def test_a(record):\n    record('m', 1.0, 's')\n    raise KeyboardInterrupt\n")
    out = run_pytest([str(suite), "--platform=kvm", f"--results-dir={tmp_path}", "--run-id=ab1", "-q"], cwd=tmp_path)
    assert out.returncode == 2
    rs = load_runs([tmp_path / "ab1"])
    assert rs.runs[0].status == "aborted" and len(rs.samples) == 1


def test_bad_option_values_are_one_line(tmp_path):
    suite = tmp_path / "test_x.py"
    suite.write_text("def test_a():\n    pass\n")
    for args, needle in [(["--repeat=0"], "--repeat"), (["--soak=ten"], "--soak"),
                         (["--kubeconfig=/nonexistent/kc"], "--kubeconfig"), (["--spec=/nonexistent.yaml"], "--spec")]:
        out = run_pytest([str(suite), "--platform=kvm", f"--results-dir={tmp_path}", *args], cwd=tmp_path)
        lines = [l for l in out.stderr.splitlines() if l.strip()]
        assert out.returncode != 0 and len(lines) == 1 and needle in lines[0], (args, out.stderr)
