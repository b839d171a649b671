"""The Conditions section: contended runs flagged, the verdict sentence names contention,
--exclude-contended changes the verdict where it should; nightly summary lists contended runs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from okdbench.cli import main
from reports import conditions
from results.schema import RunInfo, Sample, iso
from results.store import RunWriter, load_runs

NIGHT0 = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)


def write_run(results: Path, platform: str, i: int, build_s: float, wait: float, rng, swap: float = 0.0) -> str:
    started = NIGHT0 + timedelta(days=i)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{platform}"
    w = RunWriter(results, RunInfo(run_id=run_id, platform=platform, cluster="c", started=iso(started),
                                   hypervisor_platform=platform))

    def rec(suite, metric, value, unit, rep, **labels):
        w.record_sample(Sample(run_id=run_id, platform=platform, cluster="c", suite=suite, metric=metric, value=value,
                               unit=unit, repetition=rep, timestamp=started + timedelta(seconds=rep), labels=labels))

    for rep in range(4):
        rec("builds", "build.duration", build_s * float(np.exp(rng.normal(0, 0.01))), "s", rep, node="worker-0")
        for node in ("worker-0", "worker-1"):
            labels = {"node": node, "window": "builds.test_build", "source": "libvirt" if platform == "kvm" else "vsphere"}
            rec("context", "context.hv.cpu.wait", wait * float(np.exp(rng.normal(0, 0.05))), "ratio", rep, **labels)
            rec("context", "context.hv.memory.swap", swap, "KiB/s", rep, **labels)
        rec("context", "context.host.vcpu_ratio", 2.0, "vCPU/pCPU", rep, node="host:h1", window="builds.test_build",
            source="libvirt" if platform == "kvm" else "vsphere")
    w.finish("complete")
    return run_id


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[str]]:
    """vSphere: 4 quiet runs at 100 s. KVM: 3 quiet runs at 100 s and 5 contended runs (9 % CPU wait) at 115 s."""
    results = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(7)
    for i in range(4):
        write_run(results, "vsphere", i, 100.0, 0.004, rng)
    contended = []
    for i in range(8):
        busy = i in (1, 2, 4, 5, 7)
        rid = write_run(results, "kvm", i, 115.0 if busy else 100.0, 0.09 if busy else 0.01, rng)
        if busy:
            contended.append(rid)
    return results, contended


def test_contended_runs_are_flagged_with_the_worst_value(corpus):
    results, contended = corpus
    runset = load_runs([results])
    ctx = runset.samples[runset.samples["suite"] == "context"]
    flagged = conditions.contended_runs(ctx)
    assert sorted(r.run_id for r in flagged) == sorted(contended)
    assert all(r.platform == "kvm" for r in flagged)
    assert all(any("waited" in reason and "%" in reason for reason in r.reasons) for r in flagged)


def test_swap_activity_flags_a_run(tmp_path):
    write_run(tmp_path, "kvm", 0, 100.0, 0.0, np.random.default_rng(1), swap=12.0)
    ctx = load_runs([tmp_path]).samples
    [run] = conditions.contended_runs(ctx[ctx["suite"] == "context"])
    assert run.reasons == ["the hypervisor swapped guest memory (12 KiB/s)"]


def test_report_names_contention_and_exclude_contended_changes_the_verdict(corpus, tmp_path, capsys):
    results, contended = corpus
    out = tmp_path / "all.json"
    assert main(["report", str(results), "--baseline", "vsphere", "--candidate", "kvm", "--out", str(out)]) == 0
    assert "5 contended run(s)" in capsys.readouterr().out
    row = next(m for m in json.loads(out.read_text())["metrics"] if m["metric"] == "build.duration")
    assert row["verdict"] == "worse"
    assert "5 of 8 kvm runs ran under contention" in row["sentence"]
    assert "the kvm hosts were busier, not necessarily slower" in row["sentence"]
    # the condition itself is not a verdict of the executive summary
    assert not any(m["metric"].startswith("context.") for m in json.loads(out.read_text())["metrics"])

    clean = tmp_path / "clean.json"
    assert main(["report", str(results), "--baseline", "vsphere", "--candidate", "kvm", "--out", str(clean),
                 "--exclude-contended"]) == 0
    doc = json.loads(clean.read_text())
    row = next(m for m in doc["metrics"] if m["metric"] == "build.duration")
    assert row["verdict"] == "no significant difference" and row["runs_cand"] == 3
    assert doc["verdicts_excluding_contended"] is True
    assert sorted(c["run_id"] for c in doc["contended_runs"]) == sorted(contended)


def test_html_shows_conditions_side_by_side_and_both_verdicts(corpus, tmp_path):
    results, contended = corpus
    out = tmp_path / "r.html"
    assert main(["report", str(results), "--baseline", "vsphere", "--candidate", "kvm", "--out", str(out),
                 "--exclude-contended"]) == 0
    html = out.read_text()
    assert 'id="conditions"' in html and "vCPU wait for a physical CPU" in html
    assert "5 contended runs" in html and all(rid in html for rid in contended)
    assert "Verdicts with and without contended runs" in html
    assert "computed without these runs (--exclude-contended)" in html


def test_thresholds_follow_the_audit_limit():
    from provision.audit.kvm import DEFAULT_OVERCOMMIT

    assert conditions.AUDIT_VCPU_LIMIT == DEFAULT_OVERCOMMIT["other"]


def test_nightly_summary_lists_contended_runs_and_marks_a_regression_on_a_contended_night(corpus):
    from okdbench.nightly.report import _latest_contended, contended_runs
    from reports.analysis import build_report

    results, contended = corpus
    report = build_report(load_runs([results]), "vsphere", "kvm", with_charts=False)
    listed = contended_runs(report)
    assert sorted(c["run_id"] for c in listed) == sorted(contended)
    assert all(c["date"] and c["reasons"] for c in listed)
    # the newest kvm night (index 7) is a contended one; vSphere's newest night is quiet
    assert _latest_contended(report, "kvm", listed) and not _latest_contended(report, "vsphere", listed)


def test_nightly_regression_on_a_contended_night_says_so(tmp_path):
    from okdbench.nightly.config import load_config
    from okdbench.nightly.report import nightly_report
    from tests.nightly_support import seed_history, write_config

    cfg_path = write_config(tmp_path)
    kvm = [10.0 + 0.05 * (i % 3) for i in range(12)] + [13.0 + 0.05 * (i % 3) for i in range(12)]
    vs = [10.0 + 0.05 * (i % 3) for i in range(24)]
    seed_history(tmp_path / "results", 24, {"kvm": kvm, "vsphere": vs})
    # the newest kvm night also holds a run whose vCPUs waited 20 % of the time
    started = datetime(2026, 1, 24, 2, 0, tzinfo=timezone.utc)
    w = RunWriter(tmp_path / "results", RunInfo(run_id="busy-kvm", platform="kvm", cluster="seed", started=iso(started)))
    w.record_sample(Sample(run_id="busy-kvm", platform="kvm", cluster="seed", suite="demo", metric="demo.duration",
                           value=13.0, unit="s", timestamp=started, labels={"node": "n0"}))
    w.record_sample(Sample(run_id="busy-kvm", platform="kvm", cluster="seed", suite="context", metric="context.hv.cpu.wait",
                           value=0.2, unit="ratio", timestamp=started, labels={"node": "n0", "window": "demo.test_speed", "source": "libvirt"}))
    w.finish("complete")
    outcome = nightly_report(load_config(cfg_path))
    assert [c["run_id"] for c in outcome.contended] == ["busy-kvm"]
    [reg] = outcome.regressions
    assert reg["platform"] == "kvm" and reg["contended"] == ["vCPUs waited 20.0 % of the time for a physical CPU"]
    assert "the newest run on kvm was contended" in reg["message"]


def test_conditions_per_window_show_medians_over_runs(corpus):
    results, contended = corpus
    runset = load_runs([results], categorical=True)
    ctx = runset.samples[runset.samples["suite"] == "context"]
    rows = {(w.window, w.metric): w.medians for w in conditions.by_window(ctx, ["vsphere", "kvm"])}
    wait = rows[("builds.test_build", "context.hv.cpu.wait")]
    assert wait["vsphere"] == pytest.approx(0.004, rel=0.1) and wait["kvm"] == pytest.approx(0.09, rel=0.1)
    assert rows[("builds.test_build", "context.hv.memory.swap")] == {"vsphere": 0.0, "kvm": 0.0}
    assert ("builds.test_build", "context.host.vcpu_ratio") not in rows
