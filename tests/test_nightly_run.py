"""okdbench nightly end to end: real pytest sessions per platform, real report, summary.json, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


from okdbench.nightly.config import load_config
from okdbench.nightly.lock import NightlyLock
from okdbench.nightly import runner
from okdbench.nightly.runner import run_nightly
from tests.nightly_support import read_summary, seed_history, write_config
from tests.support._bounded_run import STALL_S, run_bounded, tree_cpu_s

ROOT = Path(__file__).resolve().parent.parent


def test_all_good_exits_0_and_writes_summary(tmp_path, monkeypatch):
    from tests.test_nightly_notify import Hook

    monkeypatch.delenv("NIGHTLY_FAIL", raising=False)
    hook = Hook(status=500)  # the webhook is down: the nightly's result must not change
    try:
        cfg = load_config(write_config(tmp_path, notify={"webhook_url": hook.url, "retries": 1, "backoff": 0, "timeout": 2},
                                       primary=["demo.duration"]))
        code, summary = run_nightly(cfg)
    finally:
        hook.close()
    assert code == 0, summary["errors"]
    assert len(hook.bodies) == 2 and hook.bodies[0]["nightly_id"] == summary["nightly_id"]
    on_disk = read_summary(tmp_path)
    assert on_disk == summary
    assert summary["verdict"] == "ok" and summary["exit_code"] == 0
    assert [p["label"] for p in summary["platforms"]] == ["vsphere", "kvm"]
    for p in summary["platforms"]:
        assert p["status"] == "complete" and p["pytest_exit"] == 0 and p["error"] is None
        assert p["samples"] == 3 and p["criteria"] == {"passed": 1}
        assert Path(p["log_file"]).is_file()
        assert (tmp_path / "results" / p["run_id"] / "samples.parquet").is_file()
    assert summary["criteria_failed"] == [] and summary["regressions"] == []
    assert {r["run_id"] for r in summary["runs_included"]} == {p["run_id"] for p in summary["platforms"]}
    assert summary["incomplete_runs"] == []
    assert Path(summary["report"]).is_file() and summary["report"].endswith("nightly.html")
    doc = json.loads((tmp_path / "reports" / "nightly.json").read_text())
    assert [m["metric"] for m in doc["metrics"] if m["primary"]] == ["demo.duration"]


def test_failed_criterion_exits_1_and_is_listed(tmp_path, monkeypatch):
    monkeypatch.setenv("NIGHTLY_FAIL", "kvm")
    code, summary = run_nightly(load_config(write_config(tmp_path)))
    assert code == 1 and summary["verdict"] == "failed"
    assert [(c["platform"], c["criterion"], c["status"]) for c in summary["criteria_failed"]] == [("kvm", "alpha", "failed")]
    assert "alpha failed on kvm" in summary["criteria_failed"][0]["detail"]
    assert summary["errors"] == []


def test_platform_that_cannot_run_exits_2_other_still_runs(tmp_path):
    cfg_path = write_config(tmp_path)
    import yaml

    data = yaml.safe_load(cfg_path.read_text())
    data["platforms"][0]["pytest_args"] = ["--no-such-option"]
    cfg_path.write_text(yaml.safe_dump(data))
    code, summary = run_nightly(load_config(cfg_path))
    assert code == 2 and summary["verdict"] == "error"
    vs, kvm = summary["platforms"]
    assert vs["status"] is None and vs["pytest_exit"] == 4
    assert "no-such-option" in vs["error"] and "\n" not in vs["error"]
    assert kvm["status"] == "complete" and kvm["error"] is None
    assert any(e.startswith("vsphere: pytest exited 4") for e in summary["errors"])
    assert read_summary(tmp_path)["exit_code"] == 2


def test_regression_in_history_exits_1(tmp_path, monkeypatch):
    monkeypatch.delenv("NIGHTLY_FAIL", raising=False)
    cfg_path = write_config(tmp_path)
    # 24 nights: kvm's build time steps up 30 % after night 12; tonight continues the new level.
    kvm = [10.0 + 0.05 * (i % 3) for i in range(12)] + [13.0 + 0.05 * (i % 3) for i in range(12)]
    vs = [10.0 + 0.05 * (i % 3) for i in range(24)]
    seed_history(tmp_path / "results", 24, {"kvm": kvm, "vsphere": vs})
    monkeypatch.setenv("NIGHTLY_VALUE_KVM", "13")
    code, summary = run_nightly(load_config(cfg_path))
    assert code == 1, summary["errors"]
    assert [(r["metric"], r["platform"]) for r in summary["regressions"]] == [("demo.duration", "kvm")]
    assert summary["regressions"][0]["change_pct"] > 20
    assert len(summary["runs_included"]) == 50
    assert summary["criteria_failed"] == []


def test_overlapping_nightly_exits_2_with_one_line(tmp_path):
    cfg_path = write_config(tmp_path)
    cfg = load_config(cfg_path)
    with NightlyLock(cfg.lock_path):
        proc = run_bounded([sys.executable, "-m", "okdbench", "nightly", "--config", str(cfg_path)],
                              cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "another nightly run holds" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "reports" / "summary.json").exists()
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir()) or \
        [p.name for p in (tmp_path / "results").iterdir()] == [".okdbench-nightly.lock"]


def test_cli_dry_run_and_bad_config(tmp_path):
    cfg_path = write_config(tmp_path)
    ok = run_bounded([sys.executable, "-m", "okdbench", "nightly", "--config", str(cfg_path), "--dry-run"],
                        cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "--platform kvm --label kvm --spec" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("platforms:\n  - label: kvm\n    platform: kvm\n    spec: a.yaml\n    repeat: lots\n  - label: x\n")
    proc = run_bounded([sys.executable, "-m", "okdbench", "nightly", "--config", str(bad)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"okdbench nightly: error: {bad}: platforms[0].repeat: 'lots' is not allowed: "
        "input should be a valid integer, unable to parse string as an integer"
    ]


def test_hung_platform_is_stopped_at_its_timeout(tmp_path, monkeypatch):
    import yaml

    cfg_path = write_config(tmp_path)
    data = yaml.safe_load(cfg_path.read_text())
    data["platforms"][1]["timeout"] = "4s"
    cfg_path.write_text(yaml.safe_dump(data))
    stream = tmp_path / "stream.txt"
    monkeypatch.setenv("NIGHTLY_STREAM", str(stream))  # a test that never ends

    class StreamingFirst(subprocess.Popen):
        """The session's 4 s start once it streams samples: on a loaded machine pytest alone may
        take longer to start, and what is tested is what happens at the timeout."""

        def wait(self, timeout=None):
            if timeout is not None and "pytest" in self.args:
                cpu, since = -1.0, time.monotonic()
                while (not stream.exists() or len(stream.read_text().split()) <= 3) and self.poll() is None:
                    if (now := tree_cpu_s(self.pid)) > cpu:
                        cpu, since = now, time.monotonic()
                    assert time.monotonic() - since < STALL_S, "the session made no progress towards streaming"
                    time.sleep(0.05)
            return super().wait(timeout)

    monkeypatch.setattr(runner.subprocess, "Popen", StreamingFirst)
    code, summary = run_nightly(load_config(cfg_path), only=["kvm"])
    assert code == 2
    (kvm,) = summary["platforms"]
    assert kvm["error"].startswith("timeout: the session ran longer than 4s")
    # SIGTERM reached the session: it ended 'aborted' with its records, not as a killed, unfinished run.
    assert kvm["status"] == "aborted" and kvm["samples"] > 3
