"""Statistics on run medians: calibrated under A/A, powerful under a real shift, honest about n.

Simulated data has run-to-run variation (5 %, log scale) on top of within-run noise (2 %),
which is what makes sample pooling lie. Seeds are fixed so the tests are reproducible.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from reports import stats
from plumbing.errors import UserError
from reports.analysis import build_report
from reports.render import render_html
from reports.model import Options
from results.store import RunSet
from results.schema import RunInfo

OPTS = Options()


def run_medians(rng, n_runs: int, level: float, samples: int = 10, run_sd: float = 0.05, sample_sd: float = 0.02):
    run_effect = rng.normal(0.0, run_sd, n_runs)
    values = level * np.exp(run_effect[:, None] + rng.normal(0.0, sample_sd, (n_runs, samples)))
    return np.median(values, axis=1), values


def decide(base, cand, better="lower", opts=OPTS, rng=None):
    c = stats.compare_runs(base, cand, opts, rng)
    return c, stats.verdict(c, c.p_value, better, opts)


def test_aa_with_run_effects_rarely_calls_a_difference():
    rng = np.random.default_rng(20240601)
    called = 0
    for _ in range(200):
        base, _ = run_medians(rng, 4, 100.0)
        cand, _ = run_medians(rng, 4, 100.0)
        _, v = decide(base, cand, rng=rng)
        called += v in ("better", "worse")
    assert called / 200 <= 0.07


def test_pooled_samples_would_have_lied_on_the_same_data():
    # Why the run is the unit: the same A/A data, pooled, calls differences far too often.
    rng = np.random.default_rng(7)
    pooled_calls = 0
    for _ in range(100):
        _, sb = run_medians(rng, 4, 100.0)
        _, sc = run_medians(rng, 4, 100.0)
        pooled_calls += sps.mannwhitneyu(sb.ravel(), sc.ravel()).pvalue < 0.05
    assert pooled_calls / 100 > 0.3


def test_one_run_per_side_is_never_enough_however_many_samples():
    rng = np.random.default_rng(3)
    for shift in (1.0, 1.5, 3.0):
        for _ in range(50):
            base, _ = run_medians(rng, 1, 100.0, samples=500)
            cand, _ = run_medians(rng, 1, 100.0 * shift, samples=500)
            _, v = decide(base, cand, rng=rng)
            assert v == "not enough samples"


def test_two_runs_on_one_side_is_not_enough_either():
    rng = np.random.default_rng(4)
    base, _ = run_medians(rng, 2, 100.0)
    cand, _ = run_medians(rng, 8, 200.0)
    _, v = decide(base, cand, rng=rng)
    assert v == "not enough samples"


def test_twenty_percent_shift_is_detected_and_ci_covers_truth():
    rng = np.random.default_rng(11)
    detected = covered = 0
    n = 200
    for _ in range(n):
        base, _ = run_medians(rng, 4, 100.0)
        cand, _ = run_medians(rng, 4, 120.0)
        c, v = decide(base, cand, rng=rng)
        detected += v == "worse"
        covered += c.ci_low <= 1.2 <= c.ci_high
    assert detected / n >= 0.90
    assert covered / n >= 0.90


def test_mann_whitney_option_is_calibrated_and_detects_shift():
    opts = Options(test="mannwhitney")
    rng = np.random.default_rng(12)
    aa = sum(decide(run_medians(rng, 6, 100)[0], run_medians(rng, 6, 100)[0], opts=opts, rng=rng)[1] in ("better", "worse")
             for _ in range(100))
    shift = sum(decide(run_medians(rng, 6, 100)[0], run_medians(rng, 6, 120)[0], opts=opts, rng=rng)[1] == "worse"
                for _ in range(100))
    assert aa <= 8
    assert shift >= 90
    c, _ = decide(run_medians(rng, 6, 100)[0], run_medians(rng, 6, 100)[0], opts=opts, rng=rng)
    assert c.test == "Mann-Whitney U"


@pytest.mark.parametrize(
    "better,factor,expected",
    [("higher", 0.7, "worse"), ("higher", 1.3, "better"), ("lower", 0.7, "better"), ("lower", 1.3, "worse")],
)
def test_direction_follows_the_metrics_better(better, factor, expected):
    rng = np.random.default_rng(5)
    base, _ = run_medians(rng, 5, 800.0)
    cand, _ = run_medians(rng, 5, 800.0 * factor)
    c, v = decide(base, cand, better=better, rng=rng)
    assert v == expected
    assert (c.ratio < 1) == (factor < 1)


def test_variance_too_high_when_runs_scatter_beyond_the_limit():
    rng = np.random.default_rng(6)
    base, _ = run_medians(rng, 5, 100.0, run_sd=0.4)
    cand, _ = run_medians(rng, 5, 100.0)
    c, v = decide(base, cand, rng=rng)
    assert c.cv_base > OPTS.cv_limit
    assert v == "variance too high"
    assert c.runs_needed is not None and c.runs_needed > 5


def test_a_significant_difference_keeps_its_verdict_despite_noisy_runs():
    # The demo's WAL fsync on an emulated host: kvm-default's runs jump between host states (CV ~30 %),
    # kvm-tuned's stay put, and every kvm-tuned run is slower than every kvm-default one.
    c, v = decide([0.63, 1.32, 0.97, 0.80], [1.57, 1.77, 1.60, 1.51])
    assert c.cv_base > OPTS.cv_limit and stats.noisy(c, OPTS)
    assert c.p_value < OPTS.alpha and v == "worse"
    # The same spread without a significant difference stays "variance too high".
    c, v = decide([0.63, 1.32, 0.97, 1.30], [1.0, 1.05, 0.95, 1.02])
    assert stats.noisy(c, OPTS) and c.p_value >= OPTS.alpha and v == "variance too high"
    # A quiet metric is never noisy, whatever its verdict.
    c, v = decide([1.0, 1.02, 0.98, 1.01], [1.0, 1.03, 0.99, 1.0])
    assert not stats.noisy(c, OPTS) and v == "no significant difference"


def test_noisy_runs_do_not_make_false_calls_more_common_than_alpha():
    # A/A with one side's runs at ~30 % CV and the other's at ~7 %: letting a significant result
    # through (instead of gating it on the CV) keeps false better/worse calls near alpha,
    # because Welch's test already weighs each side's spread.
    rng = np.random.default_rng(20261204)
    sims, called, noisy_calls = 2000, 0, 0
    for _ in range(sims):
        c, v = decide(np.exp(rng.normal(0.0, 0.3, 4)), np.exp(rng.normal(0.0, 0.07, 4)))
        called += v in ("better", "worse")
        noisy_calls += v in ("better", "worse") and stats.noisy(c, OPTS)
    assert called / sims <= 0.065
    assert noisy_calls > 0  # the case this test is about did occur


def test_runs_needed_matches_the_textbook_power_calculation():
    # 5 % run-to-run sd on the log scale, 5 % difference: n ≈ 2(1.96+0.84)²σ²/δ² ≈ 17 (+1 for t).
    sd = 0.05
    n = stats.runs_needed(sd, math.log1p(0.05), 0.05, 0.80)
    assert 16 <= n <= 19
    # scipy's noncentral t confirms the power at that n
    d = math.log1p(0.05) / sd
    df = 2 * n - 2
    nc = d * math.sqrt(n / 2)
    power = sps.nct.sf(sps.t.ppf(0.975, df), df, nc)
    assert power >= 0.80
    assert stats.runs_needed(0.0, 0.05, 0.05, 0.8) == 3


def test_holm_step_down():
    adj = stats.holm([0.01, 0.04, None, 0.03, 0.5])
    assert adj[2] is None
    # sorted: 0.01*4=0.04, 0.03*3=0.09, 0.04*2=0.08 -> monotone 0.09, 0.5*1 -> 0.5
    assert adj == pytest.approx([0.04, 0.09, None, 0.09, 0.5])


def test_weighted_holm_gives_a_named_metric_most_of_alpha():
    family = [0.01, 0.04, None, 0.03, 0.5]
    assert stats.holm(family, [1.0] * 5) == stats.holm(family)  # equal weights: plain Holm
    assert stats.holm_levels(family, 0.05, [2.0] * 5) == pytest.approx(stats.holm_levels(family, 0.05))
    # 0.8 on the first metric, 0.2 shared by the three others (the None is not in the family).
    w = [0.8, 0.2 / 3, 1.0, 0.2 / 3, 0.2 / 3]
    adj = stats.holm(family, w)
    # by p/w: 0.01/0.8 tested at alpha·0.8/1 -> 0.0125; then 0.03 at alpha·(0.2/3)/0.2 -> 0.09;
    # 0.04 -> 0.04·2 = 0.08, raised to the running 0.09; 0.5 -> 0.5
    assert adj == pytest.approx([0.0125, 0.09, None, 0.09, 0.5])
    # The primary's interval is at 1 - 0.05/1.25 = 96 %: wider than 95 %, far narrower than Bonferroni's 98.75 %.
    assert stats.holm_levels(family, 0.05, w)[0] == pytest.approx(0.96)
    with pytest.raises(ValueError):
        stats.holm(family, [0.5, 0.0, 1.0, 1.0, 1.0])


def test_weighted_holm_keeps_the_family_wise_error_rate():
    # A/A: 1 primary (0.8) and 16 secondary metrics; a false "better/worse" anywhere in a family
    # must stay at about alpha, as with plain Holm.
    rng = np.random.default_rng(41)
    w = [0.8] + [0.2 / 16] * 16
    any_false = 0
    families = 2000
    for _ in range(families):
        family = list(rng.uniform(size=17))
        any_false += min(p for p in stats.holm(family, w)) < 0.05
    assert any_false / families <= 0.06


def test_fisher_exact_on_pass_rates():
    assert stats.fisher_pass_rates(10, 10, 0, 10) < 0.001
    assert stats.fisher_pass_rates(9, 10, 8, 10) == pytest.approx(1.0)
    assert stats.fisher_pass_rates(1, 1, 0, 0) is None


def test_identical_runs_do_not_divide_by_zero():
    c, v = decide([10.0, 10.0, 10.0], [10.0, 10.0, 10.0])
    assert v == "no significant difference"
    assert c.ratio == 1.0 and c.ci_low == 1.0 and c.ci_high == 1.0
    c, v = decide([10.0, 10.0, 10.0], [12.0, 12.0, 12.0])
    assert v == "worse"


def test_zero_and_negative_capable_metrics_fall_back_to_differences():
    c, _ = decide([0.0, 1.0, 2.0, 1.0], [5.0, 6.0, 7.0, 6.0])
    assert not c.log_scale
    assert c.ratio == pytest.approx(6.0)


def _runset(frames: dict[str, list[np.ndarray]], metric="build.duration", better="lower") -> RunSet:
    """A RunSet straight from arrays: platform -> one array of sample values per run."""
    rows, runs = [], []
    for platform, per_run in frames.items():
        for i, values in enumerate(per_run):
            run_id = f"{platform}-{i}"
            runs.append(RunInfo(run_id=run_id, platform=platform, cluster="c", started=f"2024-01-{i + 1:02d}T01:00:00Z",
                                status="complete"))
            for k, v in enumerate(values):
                rows.append({"run_id": run_id, "platform": platform, "cluster": "c", "suite": "builds",
                             "metric": metric, "value": float(v), "unit": "s", "better": better, "repetition": k,
                             "timestamp": pd.Timestamp("2024-01-01", tz="UTC"), "labels": "{}"})
    samples = pd.DataFrame(rows)
    criteria = pd.DataFrame(columns=["run_id", "platform", "criterion", "status", "detail", "duration_s"])
    return RunSet(samples=samples, criteria=criteria, runs=runs)


def test_report_says_not_enough_samples_plainly_with_runs_still_needed():
    rng = np.random.default_rng(8)
    rs = _runset({"vsphere": [rng.normal(100, 2, 400)], "kvm": [rng.normal(130, 2, 400) for _ in range(4)]})
    report = build_report(rs, opts=OPTS, with_charts=False)
    (row,) = report.summary
    assert report.baseline == "vsphere" and report.candidate == "kvm"
    assert row.verdict == "not enough samples"
    assert "vsphere has 1 run, needs 2 more" in row.sentence
    assert row.samples_base == 400


def test_report_sentence_for_a_decided_metric():
    rng = np.random.default_rng(9)
    base = [100 * math.exp(rng.normal(0, 0.03)) * np.exp(rng.normal(0, 0.02, 40)) for _ in range(4)]
    cand = [112 * math.exp(rng.normal(0, 0.03)) * np.exp(rng.normal(0, 0.02, 40)) for _ in range(4)]
    report = build_report(_runset({"vsphere": base, "kvm": cand}), with_charts=False)
    (row,) = report.summary
    assert row.verdict == "worse"
    text = row.sentence.replace("\xa0", " ")
    assert text.startswith("build.duration on kvm takes ")
    assert "longer than on vsphere (95 % CI" in text
    assert "4 runs per platform, ~40 samples per run" in row.sentence
    assert report.headlines == [row.sentence]


def _many_metrics(rng, shift: float, others: int = 16) -> RunSet:
    """4 runs a side of etcd's fsync (shifted by `shift`, noisy like the demo's) beside `others` unchanged metrics."""
    frames = []
    for k in range(others + 1):
        metric, factor = ("guest.etcd.wal_fsync.p50", shift) if k == 0 else (f"guest.other.m{k}", 1.0)
        frames.append(_runset({p: [f * math.exp(rng.normal(0, 0.08)) * np.exp(rng.normal(0, 0.02, 4)) for _ in range(4)]
                               for p, f in (("kvm-default", 1.0), ("kvm-tuned", factor))}, metric=metric))
    return RunSet(samples=pd.concat([f.samples for f in frames], ignore_index=True), criteria=frames[0].criteria,
                  runs=frames[0].runs)


def test_a_primary_metric_is_decided_where_plain_holm_over_17_is_not():
    # The demo's case: one clear difference (p ~0.005) among 17 metrics. Plain Holm needs p < 0.05/17.
    rng = np.random.default_rng(12)
    rs = _many_metrics(rng, 1.3)
    plain = {r.metric: r for r in build_report(rs, "kvm-default", "kvm-tuned", with_charts=False).summary}
    opts = Options(primary=("guest.etcd.wal_fsync.p50",))
    report = build_report(rs, "kvm-default", "kvm-tuned", opts, with_charts=False)
    named = {r.metric: r for r in report.summary}
    row, before = named["guest.etcd.wal_fsync.p50"], plain["guest.etcd.wal_fsync.p50"]
    assert 0.05 / 17 < row.p_value < 0.04, row.p_value  # the case this is about
    assert before.verdict == "no significant difference" and row.verdict == "worse" and row.primary
    assert row.p_holm == pytest.approx(row.p_value / 0.8)
    assert row.ci_level == pytest.approx(0.96) and row.ci_low > 1
    assert "96 % CI" in row.sentence.replace("\xa0", " ")
    # The secondaries share what is left: even once the primary is decided, each step tests one at
    # alpha/16 at best (plain Holm here: alpha/16 too, after its first step at alpha/17).
    for m, r in named.items():
        if m != row.metric:
            assert not r.primary and r.p_holm >= min(1.0, 16 * r.p_value) - 1e-12
    html = render_html(report)
    assert 'id="primary"' in html and "carries 80 % of the 5 % error budget" in html.replace("\xa0", " ")
    assert "<strong class=\"small\">(primary)</strong>" in html
    assert "Holm's weighted form" in html
    assert 'id="primary"' not in render_html(build_report(rs, "kvm-default", "kvm-tuned", with_charts=False))


def test_a_primary_metric_that_does_not_exist_is_one_clear_error():
    rs = _many_metrics(np.random.default_rng(13), 1.0, others=2)
    with pytest.raises(UserError, match=r"^primary metric guest\.etcd\.wal_fsync\.p5: no such metric in these runs; "
                                        r"did you mean guest\.etcd\.wal_fsync\.p50"):
        build_report(rs, "kvm-default", "kvm-tuned", Options(primary=("guest.etcd.wal_fsync.p5",)), with_charts=False)


def test_inconclusive_metric_states_runs_needed():
    rng = np.random.default_rng(10)
    base = [100 * math.exp(rng.normal(0, 0.08)) * np.exp(rng.normal(0, 0.02, 10)) for _ in range(3)]
    cand = [100 * math.exp(rng.normal(0, 0.08)) * np.exp(rng.normal(0, 0.02, 10)) for _ in range(3)]
    report = build_report(_runset({"vsphere": base, "kvm": cand}), with_charts=False)
    (row,) = report.summary
    assert row.verdict == "no significant difference"
    assert row.runs_needed and row.runs_needed > 3
    assert f"about {row.runs_needed} runs per platform are needed" in row.sentence


@pytest.mark.parametrize("test,n,weights", [("welch", 3, None), ("welch", 5, None), ("mannwhitney", 6, None),
                                            ("welch", 4, [0.8] + [0.2 / 7] * 7)])
def test_intervals_agree_with_holm_verdicts(test, n, weights):
    """Over many families of 8 metrics (some shifted): an interval excludes 'no change' iff Holm rejects."""
    opts = Options(test=test)
    rng = np.random.default_rng(31)
    checked = rejected = 0
    for _ in range(15 if test == "mannwhitney" else 150):  # scipy's exact U test is slow per call
        pairs = [(run_medians(rng, n, 100.0)[0], run_medians(rng, n, 100.0 * f)[0])
                 for f in (1.0, 1.0, 1.0, 1.03, 1.08, 1.15, 1.3, 0.8)]
        cs = [stats.compare_runs(b, c, opts) for b, c in pairs]
        family = [c.p_value for c in cs]
        adjusted = stats.holm(family, weights)
        levels = stats.holm_levels(family, opts.alpha, weights)
        for (b, c), p_holm, level in zip(pairs, adjusted, levels):
            lo, hi = stats.interval(b, c, level, opts)
            assert level >= 1 - opts.alpha
            assert (lo > 1 or hi < 1) == (p_holm < opts.alpha), (p_holm, level, lo, hi)
            checked += 1
            rejected += p_holm < opts.alpha
    assert 0 < rejected < checked  # both outcomes were exercised


def test_t_interval_covers_at_its_level_with_three_runs():
    # A bootstrap over 3 runs has 10 distinct resamples a side and covers far less than 95 %;
    # the t interval that matches Welch keeps its promise.
    rng = np.random.default_rng(32)
    covered = 0
    for _ in range(1000):
        base, _ = run_medians(rng, 3, 100.0)
        cand, _ = run_medians(rng, 3, 110.0)
        c = stats.compare_runs(base, cand, OPTS)
        assert c.ci_level == pytest.approx(0.95)
        covered += c.ci_low <= 1.1 <= c.ci_high
    assert 0.93 <= covered / 1000 <= 0.975


def test_known_truth_report_shows_no_confident_interval_for_noisy_metrics(tmp_path):
    """reports/synthetic.py: a 60 % run-to-run metric with a large apparent shift, and a true 20 % shift."""
    from reports.render import render_html
    from reports.synthetic import MetricTruth, PlatformTruth, write_platform
    from results.store import load_runs

    rng = np.random.default_rng(33)
    def metrics(f):
        return [MetricTruth("provision.vms.duration", 100.0 * f, run_sd=0.6, samples=3),
                MetricTruth("build.duration", 100.0 * f, run_sd=0.02, samples=3),
                *[MetricTruth(f"other.m{i}", 50.0, run_sd=0.05, samples=3) for i in range(6)]]
    write_platform(tmp_path, PlatformTruth("kvm-default", metrics(1.0), runs=4), rng)
    write_platform(tmp_path, PlatformTruth("kvm-tuned", metrics(1.2), runs=4), rng)
    report = build_report(load_runs([tmp_path]), "kvm-default", "kvm-tuned", with_charts=False)
    rows = {r.metric: r for r in report.summary}
    noisy, real = rows["provision.vms.duration"], rows["build.duration"]
    assert noisy.verdict == "variance too high"
    assert real.verdict == "worse" and real.ci_low < 1.2 < real.ci_high and real.ci_low > 1
    assert real.ci_level > 0.95  # one of 8 metrics: Holm's level, not 95 %
    html = render_html(report)
    row_html = html[html.index('href="#m-provision-vms-duration"'):]
    row_html = row_html[:row_html.index("</tr>")]
    assert "inconclusive: no interval (runs too noisy)" in row_html and "…" not in row_html


def test_audit_finding_counts_are_listed_not_judged(tmp_path):
    from reports.render import render_html
    from reports.synthetic import MetricTruth, PlatformTruth, write_platform
    from results.store import load_runs

    rng = np.random.default_rng(34)
    def metrics(findings):
        return [MetricTruth("audit.findings.total", findings, unit="count", suite="audit", run_sd=0.0, sample_sd=0.0, samples=1),
                MetricTruth("build.duration", 100.0, samples=3)]
    write_platform(tmp_path, PlatformTruth("kvm-default", metrics(2.0), runs=3), rng)
    write_platform(tmp_path, PlatformTruth("kvm-tuned", metrics(1e-9), runs=3), rng)  # ~0 findings
    report = build_report(load_runs([tmp_path]), "kvm-default", "kvm-tuned", with_charts=False)
    assert [r.metric for r in report.summary] == ["build.duration"]
    assert [s.metric for s in report.sections] == ["build.duration"]
    assert sum(report.verdict_counts.values()) == 1
    assert report.audit_findings == [{"metric": "audit.findings.total", "kvm-default": 2.0, "kvm-default runs": 3,
                                      "kvm-tuned": pytest.approx(0.0, abs=1e-6), "kvm-tuned runs": 3}]
    html = render_html(report)
    assert "Audit findings" in html and "never enter the performance verdicts" in html


def test_fisher_exact_matches_scipy():
    for pa, ca, pb, cb in [(10, 10, 0, 10), (9, 10, 8, 10), (3, 3, 1, 2), (0, 5, 0, 7), (12, 30, 25, 31), (1, 1, 0, 1),
                           (364, 365, 340, 365)]:
        expected = sps.fisher_exact([[pa, ca - pa], [pb, cb - pb]]).pvalue
        assert stats.fisher_pass_rates(pa, ca, pb, cb) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_t_distribution_matches_scipy():
    from scipy import special

    from reports.tdist import t_ppf, t_sf

    for df in (1, 1.5, 2, 3, 4.3, 7, 12, 30, 100, 1000, 1e4):
        for t in (0.01, 0.5, 1, 2, 3, 5, 10, 30, 100):
            assert t_sf(t, df) == pytest.approx(special.stdtr(df, -t), rel=1e-9, abs=1e-300)
            assert t_sf(-t, df) == pytest.approx(special.stdtr(df, t), rel=1e-9)
        for q in (0.6, 0.8, 0.9, 0.975, 0.995, 0.9999, 1 - 1e-9):
            assert t_ppf(q, df) == pytest.approx(special.stdtrit(df, q), rel=1e-8)
            assert t_ppf(1 - q, df) == pytest.approx(special.stdtrit(df, 1 - q), rel=1e-8)
