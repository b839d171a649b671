"""The report's Resilience section from run folders of known truth (synthetic runs + timelines)."""

from __future__ import annotations

import numpy as np
import pytest

from reports import analysis, resilience
from reports.render import render_html
from reports.synthetic import MetricTruth, PlatformTruth, write_platform
from results.store import load_runs
from results.timeline import Timeline, read_timelines, write_timeline


def _truth(platform: str, unavailable: float, seed_shift: float = 0.0) -> PlatformTruth:
    m = [MetricTruth("resilience.power-off.unavailable_s", unavailable, "s", suite="resilience", samples=1, run_sd=0.08),
         MetricTruth("resilience.power-off.recover_s", 330.0, "s", suite="resilience", samples=1),
         MetricTruth("resilience.migrate.errors", 1.0, "count", suite="resilience", samples=1, run_sd=0.0, sample_sd=0.0),
         MetricTruth("build.duration", 100.0 + seed_shift)]
    return PlatformTruth(platform=platform, metrics=m, runs=4)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    results = tmp_path_factory.mktemp("res-results")
    rng = np.random.default_rng(3)
    dirs = write_platform(results, _truth("vsphere", 38.0), rng) + write_platform(results, _truth("kvm", 41.0), rng)
    for d in dirs:
        tl = Timeline(disruption="power-off", node="worker-0", vm="okd-worker-0", t0=1e9,
                      probes=[(t / 10, 4.0, not 0 <= t / 10 < 40) for t in range(-20, 500)],
                      transitions=[(40.2, "node", "worker-0", "NotReady"), (41.0, "pod", "app-x", "NotReady"),
                                   (340.0, "pod", "app-x", "Deleted"), (342.0, "pod", "app-y", "Ready"),
                                   (400.0, "node", "worker-0", "Ready")])
        write_timeline(d, "power-off-worker", tl)
    return results


def test_sections_group_the_summary_rows_per_disruption_with_a_sentence(corpus):
    report = analysis.build_report(load_runs([corpus]), baseline="vsphere", candidate="kvm", with_charts=False)
    res = report.resilience
    assert [b.disruption for b in res.blocks] == ["power-off", "migrate"]
    power_off = res.blocks[0]
    assert [r.metric for r in power_off.rows] == ["resilience.power-off.unavailable_s", "resilience.power-off.recover_s"]
    row = power_off.rows[0]
    assert power_off.sentence == (f"A worker power-off cost {row.median_cand:.0f} s of partial unavailability on kvm "
                                  f"and {row.median_base:.0f} s on vsphere: {row.verdict}.")
    assert row.runs_base == row.runs_cand == 4  # the run is the unit, as everywhere in the report
    assert "Failed requests per migration (run median): 1 on kvm, 1 on vsphere." in res.blocks[1].sentence
    assert res.chart is None and "Power-off of worker-0 on kvm" in res.chart_caption
    assert "400 failed requests, 5 node/pod transitions" in res.chart_caption


def test_html_shows_the_section_and_the_timeline_chart(corpus):
    report = analysis.build_report(load_runs([corpus]), baseline="vsphere", candidate="kvm")
    html = render_html(report)
    assert html.count('id="resilience"') == 1
    assert "A worker power-off cost" in html and 'id="res-migrate"' in html
    chart = html.split('id="resilience"', 1)[1]
    svg = chart.split('<svg class="chart"', 1)[1].split("</svg>", 1)[0]
    # the timeline: its title, the axis label, failed requests as crosses, node transitions as labelled lines
    assert "of worker-" in svg.split("</title>", 1)[0] and "seconds since the disruption" in svg
    assert 'stroke="#c0392b" stroke-width="1.5"' in svg and "node NotReady" in svg


def test_no_resilience_metrics_no_section(tmp_path):
    rng = np.random.default_rng(1)
    for p in ("a", "b"):
        write_platform(tmp_path, PlatformTruth(platform=p, metrics=[MetricTruth("build.duration", 10.0)], runs=3), rng)
    report = analysis.build_report(load_runs([tmp_path]), baseline="a", candidate="b", with_charts=False)
    assert report.resilience is None
    assert 'id="resilience"' not in render_html(report)


def test_a_broken_timeline_is_a_warning_not_a_crash(tmp_path):
    d = tmp_path / "run"
    (d / "timelines").mkdir(parents=True)
    (d / "timelines" / "bad.json").write_text('{"probes": [[1, 2]]}')
    (d / "timelines" / "huge.json").write_bytes(b" " * (9 * 2**20))
    warnings: list[str] = []
    assert read_timelines(d, warnings) == []
    assert len(warnings) == 2 and "bad.json: timeline skipped (ValueError: not enough values" in warnings[0] and "larger than 8 MiB" in warnings[1]


def test_split_metric():
    assert resilience.split_metric("resilience.power-off.unavailable_s") == ("power-off", "unavailable_s")
    assert resilience.split_metric("build.duration") is None


def test_in_cluster_rows_follow_the_ingress_ones_and_are_named_in_french(tmp_path):
    from dataclasses import fields

    from reports.i18n import language
    from reports.model import MetricRow

    def row(metric: str) -> MetricRow:
        values = {f.name: None for f in fields(MetricRow)}
        values.update(metric=metric, suite="resilience", unit="s", better="lower", baseline="vsphere",
                      candidate="kvm", runs_base=3, runs_cand=3, samples_base=3, samples_cand=3, test="welch",
                      verdict="no significant difference", sentence="")
        return MetricRow(**values)

    rows = [row("resilience.freeze.incluster_errors"), row("resilience.freeze.errors"),
            row("resilience.freeze.incluster_unavailable_s"), row("resilience.freeze.unavailable_s")]
    block = resilience.blocks(rows, language("fr"))[0]
    assert [r.metric.rsplit(".", 1)[1] for r in block.rows] == ["unavailable_s", "errors", "incluster_unavailable_s",
                                                                "incluster_errors"]
    assert block.labels["resilience.freeze.incluster_unavailable_s"] == "indisponibilité dans le cluster (Service)"
    section = resilience.section(rows, load_runs([tmp_path]), ["vsphere", "kvm"], {}, with_charts=False, lang="fr")
    assert section is not None and section.inside
    assert not resilience.section(rows[1::2], load_runs([tmp_path]), ["vsphere", "kvm"], {}, with_charts=False).inside


def _etcd_truth(platform: str, master_changes: float) -> PlatformTruth:
    fixed = dict(samples=1, run_sd=0.0, sample_sd=0.0, suite="resilience")
    m = [MetricTruth("resilience.freeze.unavailable_s", 3.0, "s", suite="resilience", samples=1),
         MetricTruth("resilience.freeze.node_flaps", 1.0, "count", **fixed),
         MetricTruth("resilience.freeze.leader_changes", 0.0, "count", labels={"node": "worker-0", "role": "worker",
                                                                               "scrape_s": 30.0}, **fixed),
         MetricTruth("resilience.freeze.leader_changes", master_changes, "count",
                     labels={"node": "master-0", "role": "master", "scrape_s": 30.0}, **fixed)]
    if master_changes:
        m.append(MetricTruth("resilience.freeze.leader_elect_s", 4.2, "s",
                             labels={"node": "master-0", "role": "master", "scrape_s": 30.0}, **fixed))
    return PlatformTruth(platform=platform, metrics=m, runs=3)


@pytest.fixture(scope="module")
def etcd_corpus(tmp_path_factory):
    results = tmp_path_factory.mktemp("res-etcd")
    rng = np.random.default_rng(5)
    write_platform(results, _etcd_truth("vsphere", 0.0), rng)
    write_platform(results, _etcd_truth("kvm", 1.0), rng)
    return load_runs([results])


def test_etcd_leader_sentence_per_platform_and_role(etcd_corpus):
    report = analysis.build_report(etcd_corpus, baseline="vsphere", candidate="kvm", with_charts=False)
    [freeze] = report.resilience.blocks
    assert freeze.etcd == (
        "vsphere: no etcd leader change when a master was disrupted (3 events). "
        "kvm: etcd elected a new leader after 4.2 s when a master was disrupted (3 leader changes in 3 events; "
        "Prometheus scraped etcd every 30 s, the resolution of that time).")
    # The flaps are a row; the leader figures are told per role in the sentence, not averaged over roles in a row.
    assert [r.metric for r in freeze.rows] == ["resilience.freeze.unavailable_s", "resilience.freeze.node_flaps"]
    assert freeze.labels["resilience.freeze.node_flaps"] == "node Ready to NotReady transitions"
    html = render_html(report)
    assert "kvm: etcd elected a new leader after 4.2 s" in html
    fr = render_html(analysis.build_report(etcd_corpus, baseline="vsphere", candidate="kvm", with_charts=False,
                                           lang="fr"))
    assert "kvm : etcd a élu un nouveau leader après 4,2 s" in fr


def test_a_worker_disruption_that_moved_the_leader_is_said():
    import json

    import pandas as pd

    rows = [("kvm", "resilience.reset.leader_changes", 2.0, {"role": "worker"}),
            ("kvm", "resilience.reset.leader_changes", 0.0, {"role": "worker"}),
            ("vsphere", "resilience.reset.leader_changes", 0.0, {"role": "worker"}),
            ("vsphere", "resilience.reset.leader_changes", 1.0, {"role": "master", "scrape_s": 30}),
            ("vsphere", "build.duration", 1.0, {})]
    df = pd.DataFrame([{"platform": p, "metric": m, "value": v, "labels": json.dumps(lab)} for p, m, v, lab in rows])
    assert resilience.etcd_sentence(df, "reset", ["vsphere", "kvm"]) == (
        "vsphere: etcd changed leader when a master was disrupted (1 leader change in 1 event). "
        "kvm: a worker hard reset made etcd change leader (2 leader changes in 2 events), although no etcd member "
        "runs on a worker.")
    assert resilience.etcd_sentence(df, "freeze", ["vsphere", "kvm"]) == ""
    only_workers = df[df["labels"] != json.dumps({"role": "master", "scrape_s": 30})]
    assert resilience.etcd_sentence(only_workers, "reset", ["vsphere"]) == (
        "vsphere: no etcd leader change during a worker hard reset (1 event).")
