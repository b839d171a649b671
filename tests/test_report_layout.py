"""The demo-sized report as a manager reads it: the decision first, advice instead of huge run counts, a page that fits."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from okdbench.cli import main
from reports.render import wrap_dots
from reports.synthetic import DEMO_SKIPPED, SKIP_NO_CLUSTER, write_demo_like

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("demo-results")
    write_demo_like(results, np.random.default_rng(1))
    return results


@pytest.fixture(scope="module")
def demo_html(demo_results, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo-out") / "demo-report.html"
    assert main(["report", str(demo_results), "--baseline", "kvm-default", "--candidate", "kvm-tuned", "--out", str(out)]) == 0
    return out


def section(html: str, start: str, end: str) -> str:
    a = html.index(start)
    return html[a:html.index(end, a)]


def test_metric_names_wrap_only_at_dots():
    assert str(wrap_dots("guest.disk.fdatasync.iops")) == "guest.<wbr>disk.<wbr>fdatasync.<wbr>iops"
    assert str(wrap_dots("<b>.x")) == "&lt;b&gt;.<wbr>x"


def test_decision_leads_the_summary_in_five_lines_or_fewer(demo_html):
    html = demo_html.read_text()
    summary = section(html, '<h2 id="summary">', "</h2>")
    assert summary
    decision = section(html, '<div class="decision"', "</div>")
    assert html.index('<div class="decision"') < html.index("Read with care") < html.index("<table")
    lines = re.findall(r"<li>(.*?)</li>", decision, re.S)
    assert 2 <= len(lines) <= 5
    default, tuned = lines[0], lines[1]
    assert default.startswith("kvm-default: 1 criterion failed: platform.audit (0/3)")
    assert re.search(r"metrics? worse than on kvm-tuned: guest\.\S+ [+−]\d+\.\d\xa0%", default)
    assert tuned.startswith("kvm-tuned: no criterion failed; no metric significantly worse than on kvm-default")
    assert "cannot be judged yet" in lines[-1]


def test_skipped_criteria_are_one_line_per_reason(demo_html):
    html = demo_html.read_text()
    matrix = section(html, '<h2 id="criteria">', '<h2 id="metrics">')
    assert matrix.count(SKIP_NO_CLUSTER.replace("--", "--")) == 1
    assert f"{len(DEMO_SKIPPED)} criteria never checked" in matrix
    assert all(name in matrix for name in DEMO_SKIPPED)
    rows = re.findall(r"<tr><td class=\"metric\">", section(matrix, "<tbody>", "</tbody>"))
    assert len(rows) == 1  # only platform.audit was checked


def test_runs_needed_is_capped_and_the_noise_comes_first(demo_html):
    html = demo_html.read_text()
    assert "&gt; 50</span>" in html
    assert not re.search(r">\s*\d{3,}\s*</td>", section(html, '<h2 id="summary">', '<h2 id="criteria">'))
    advice = section(html, '<div class="box" role="note" id="noise">', "</div>")
    assert "Fix the noise first" in advice and "provision.vms.duration" in advice
    assert "software-emulated hypervisor" in advice and "/dev/kvm" in advice
    assert re.search(r"about \d+ runs per platform detect a 5\xa0% difference", advice)


def test_audit_counts_are_not_verdicts(demo_html):
    html = demo_html.read_text()
    table = section(html, '<h2 id="summary">', '<h2 id="criteria">')
    assert "audit.findings" not in table
    assert "audit.<wbr>findings.<wbr>total" in section(html, 'id="audit-findings"', "</table>")


def test_wide_layout_and_scrolling_tables(demo_html):
    html = demo_html.read_text()
    assert "max-width: 1400px" in html
    assert html.count('<div class="scroll"><table>') == html.count("<table>") and html.count("<table>") >= 4
