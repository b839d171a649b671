"""`okdbench report` end to end on run folders written through the real results contract."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from okdbench.cli import main
from reports.synthetic import MetricTruth, PlatformTruth, write_platform
from results.schema import NodeGroupInfo, RunInfo, Sample
from results.store import RunWriter
from tests.support._bounded_run import run_bounded

ROOT = Path(__file__).resolve().parent.parent
EVIL = "<script>alert('okdbench')</script>"
WEIRD = "fio.<i>$rand$</i>.iops"


def metrics(build_level: float) -> list[MetricTruth]:
    return [
        MetricTruth("build.duration", build_level, samples=8),
        MetricTruth("build.stage.FetchInputs", 4.0, samples=8),
        MetricTruth("build.stage.Build", build_level * 0.6, samples=8),
        MetricTruth("build.stage.PushImage", 15.0, samples=8),
        MetricTruth("net.throughput", 900.0, unit="MB/s", better="higher", suite="network", samples=8),
        # markup and matplotlib's mathtext markers in a metric name are shown as typed
        MetricTruth(WEIRD, 5000.0, unit="iops", better="higher", suite="storage", samples=8),
    ]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(42)
    write_platform(results, PlatformTruth(
        "vsphere", metrics(100.0), runs=4, hypervisor={"esxi": "8.0.2", "vcenter": "8.0.2"},
        criteria={"install": "passed", "upgrade": "passed"}), rng)
    write_platform(results, PlatformTruth(
        "kvm", metrics(125.0), runs=4, cluster=f"okd-{EVIL}",
        nodes=[NodeGroupInfo(f"control-plane {EVIL}", 3, 4, 16384, 120), NodeGroupInfo("worker", 2, 8, 32768, 120)],
        hypervisor={"libvirt": "9.0.0", "qemu": "7.2.0", "domain_type": "qemu"},
        criteria={"install": "passed", "upgrade": "failed", f"registry {EVIL}": "error"}), rng,
        first_night=datetime(2024, 3, 1, 2, 0, tzinfo=timezone.utc))
    # A run killed mid-way (no final status) with an impossible sample from clock skew.
    info = RunInfo(run_id="20240310T020000Z-kvm-killed", platform="kvm", cluster="okd-poc",
                   started="2024-03-10T02:00:00Z", hypervisor={"emulated": True})
    w = RunWriter(results, info)
    for v in (130.0, -3.5, 128.0):
        w.record_sample(Sample(run_id=info.run_id, platform="kvm", cluster="okd-poc", suite="builds",
                               metric="build.duration", value=v, unit="s", labels={"node": EVIL}))
    # A corrupt run folder: the report skips it and says so.
    bad = results / "20240311T020000Z-broken"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    return results


def report(*args: str) -> int:
    return main(["report", *map(str, args)])


@pytest.fixture(scope="module")
def html(corpus, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("out") / "comparison.html"
    assert report(corpus, "--out", out, "--costs", ROOT / "examples" / "costs.yaml") == 0
    return out.read_text()


def test_html_report_has_every_section(html):
    # Sections are numbered by CSS counters (h2::before), in this order.
    headings = re.findall(r"<h2 id=\"[\w-]+\">([^<]+)</h2>", html)
    assert headings == ["Executive summary", "Validation matrix", "Where build time goes", "Metrics in detail",
                        "Trends", "Inventory and method", "Cost over 3 years"]
    decision = html[html.index('<div class="decision"'):]
    decision = decision[:decision.index("</div>")]
    assert re.search(r"<li>vsphere: no criterion failed; .*; 3-year cost [\d,]+ EUR\.</li>", decision)
    assert re.search(r"<li>kvm: 2 criteria failed: .*; \d metrics? worse than on vsphere: build\.duration \+\d", decision)
    assert "build.duration on kvm takes" in html and "longer than on vsphere" in html
    assert "EXAMPLE FIGURES" in html
    assert html.count('<svg class="chart"') >= 6  # stage chart + one per metric


def test_html_is_self_contained_and_has_no_script(html):
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(" in html  # the planted node name is shown as text
    assert "registry &lt;script&gt;" in html  # ... and the criterion name
    assert "fio.&lt;i&gt;$rand$&lt;/i&gt;.iops" in html and "<i>" not in html
    assert 'src="http' not in html and "<link" not in html


def test_html_lists_exclusions_warnings_and_incomplete_runs(html):
    assert "negative duration (clock skew" in html
    assert "20240311T020000Z-broken" in html  # skipped corrupt folder named in the warnings
    assert "software-emulated hypervisor" in html
    assert "cluster sizes differ between platforms" in html
    assert "20240310T020000Z-kvm-killed" in html and "incomplete" in html


def test_validation_matrix_compares_pass_rates(html):
    # upgrade: 4/4 passed on vsphere, 0/4 on kvm (the killed run recorded no criteria)
    assert "0/4 (0.0\xa0%)" in html and "4/4 (100.0\xa0%)" in html
    assert ">0.029</td>" in html  # Fisher's exact, two-sided, for 4/4 vs 0/4


def test_costs_only_when_asked(corpus, tmp_path):
    out = tmp_path / "r.html"
    assert report(corpus, "--out", out) == 0
    assert "Cost over" not in out.read_text()


def test_csv_and_json_summary_have_a_verdict_column(corpus, tmp_path):
    assert report(corpus, "--out", tmp_path / "s.csv") == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "s.csv").read_text())))
    assert {r["metric"] for r in rows} == {"build.duration", "build.stage.FetchInputs", "build.stage.Build",
                                           "build.stage.PushImage", "net.throughput", WEIRD}
    by_metric = {r["metric"]: r for r in rows}
    assert by_metric["build.duration"]["verdict"] == "worse"
    assert report(corpus, "--format", "json", "--out", tmp_path / "s.json") == 0
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["baseline"] == "vsphere" and doc["candidate"] == "kvm"
    assert {m["metric"]: m["verdict"] for m in doc["metrics"]}["build.duration"] == "worse"


def test_primary_metric_flag(corpus, tmp_path, capsys):
    assert report(corpus, "--primary", "build.duration", "--format", "json", "--out", tmp_path / "s.json") == 0
    rows = {m["metric"]: m for m in json.loads((tmp_path / "s.json").read_text())["metrics"]}
    assert rows["build.duration"]["primary"] is True and rows["build.duration"]["verdict"] == "worse"
    assert not any(m["primary"] for name, m in rows.items() if name != "build.duration")
    capsys.readouterr()
    assert report(corpus, "--primary", "build.durration", "--out", tmp_path / "x.html") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("okdbench report: error: primary metric build.durration: no such metric in these runs; "
                       "did you mean build.duration? (okdbench report --primary, or primary: in the nightly config)"), err
    assert not (tmp_path / "x.html").exists()


def test_cv_limit_and_threshold_flags(corpus, tmp_path):
    assert report(corpus, "--format", "json", "--cv-limit", "0.1%", "--out", tmp_path / "s.json") == 0
    metrics = json.loads((tmp_path / "s.json").read_text())["metrics"]
    # Every metric's runs vary past 0.1 %: all are noisy; an inconclusive one reads "variance too
    # high", a significant one keeps its verdict.
    assert all(m["noisy"] for m in metrics)
    assert {m["verdict"] for m in metrics} <= {"variance too high", "better", "worse"}
    assert "variance too high" in {m["verdict"] for m in metrics}
    with pytest.raises(SystemExit):
        report(corpus, "--cv-limit", "lots")


def test_acknowledgements_file_is_accepted(corpus, tmp_path):
    assert report(corpus, "--out", tmp_path / "a.html", "--ack", ROOT / "examples" / "acks.yaml") == 0


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return run_bounded([sys.executable, "-m", "okdbench", "report", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)


def test_empty_folder_is_one_clear_line_exit_2(tmp_path):
    p = run_cli(tmp_path)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "no run folders found" in err[0]


def test_only_corrupt_runs_exit_2(tmp_path):
    bad = tmp_path / "run1"
    bad.mkdir()
    (bad / "run.json").write_text("[]")
    assert report(tmp_path, "--out", tmp_path / "x.html") == 2


def test_platform_choice_errors_list_what_was_found(corpus, tmp_path, capsys):
    extra = tmp_path / "results"
    shutil.copytree(corpus, extra)
    rng = np.random.default_rng(1)
    write_platform(extra, PlatformTruth("kvm-tuned", metrics(100.0), runs=1), rng)
    assert report(extra, "--out", tmp_path / "x.html") == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("platforms found: kvm, kvm-tuned, vsphere; pass --baseline X --candidate Y")
    assert report(extra, "--baseline", "kvm", "--candidate", "kvm-tuned", "--out", tmp_path / "t.html") == 0
    assert report(corpus, "--baseline", "hyperv", "--out", tmp_path / "x.html") == 2
    assert "--baseline 'hyperv': no runs with that platform; platforms found: kvm, vsphere" in capsys.readouterr().err


def test_bad_costs_file_names_the_field(corpus, tmp_path, capsys):
    costs = tmp_path / "costs.yaml"
    costs.write_text("currency: EUR\nplatforms:\n  kvm:\n    licence_per_core_per_yaer: 5\n")
    assert report(corpus, "--costs", costs, "--out", tmp_path / "x.html") == 2
    assert "unknown key 'licence_per_core_per_yaer'" in capsys.readouterr().err


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_report_opens_in_headless_chromium(corpus, tmp_path, html):
    page = tmp_path / "report.html"
    page.write_text(html)
    shot = tmp_path / "report.png"
    p = run_bounded(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,3000",
         "--enable-logging=stderr", "--v=0", page.as_uri()],
        capture_output=True, text=True,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Console errors and page load failures are logged as CONSOLE / net::ERR lines.
    page_errors = [ln for ln in p.stderr.splitlines()
                   if "CONSOLE" in ln or "net::ERR" in ln or "Uncaught" in ln or str(page) in ln and "ERROR" in ln]
    assert page_errors == []
