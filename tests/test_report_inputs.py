"""Inputs the report does not trust: impossible samples, cost files, many-run reading, platform choice."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from plumbing.errors import UserError
from reports import aggregate, validity
from reports.analysis import choose_platforms, is_emulated
from reports.costs import parse_costs
from reports.synthetic import MetricTruth, PlatformTruth, write_platform
from results.schema import RunInfo
from results.store import load_runs


def frame(values, units, better="lower", metric="m"):
    n = len(values)
    return pd.DataFrame({"run_id": ["r"] * n, "platform": ["kvm"] * n, "metric": [metric] * n,
                         "value": values, "unit": units, "better": [better] * n})


def test_impossible_samples_are_excluded_with_a_reason():
    df = frame([1.0, -2.0, math.nan, math.inf, -5.0, -1.0, 3.0],
               ["s", "ms", "s", "s", "MB/s", "degC", "count"])
    df.loc[6, "better"] = "faster"
    valid, invalid = validity.split_invalid(aggregate.categorize(df))
    assert list(valid["value"]) == [1.0, -1.0]  # a negative value in an unknown unit may be real
    reasons = dict(zip(invalid["value"].astype(str), invalid["reason"]))
    assert reasons["-2.0"].startswith("negative duration")
    assert reasons["nan"].startswith("not a finite number")
    assert reasons["inf"].startswith("not a finite number")
    assert reasons["-5.0"] == "negative value for a unit that cannot be negative"
    assert "neither 'lower' nor 'higher'" in reasons["3.0"]


def test_sample_quantiles_match_numpy():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"platform": rng.choice(["a", "b"], 5000), "metric": rng.choice(["x", "y", "z"], 5000),
                       "value": rng.normal(10, 2, 5000)})
    q = aggregate.sample_quantiles(df).set_index(["platform", "metric"])
    for (p, m), g in df.groupby(["platform", "metric"]):
        assert q.loc[(p, m), "p95"] == pytest.approx(np.quantile(g["value"], 0.95))
        assert q.loc[(p, m), "n"] == len(g)


def test_costs_three_year_tco():
    table = parse_costs({
        "currency": "EUR", "example": True,
        "platforms": {
            "vsphere": {"hosts": 2, "cores_per_host": 10, "licence_per_core_per_year": 5, "support_per_year": 100},
            "kvm": {"hosts": 2, "admin_fte": 0.5, "fte_cost_per_year": 1000},
        },
    })
    assert table.years == 3
    assert table.totals == {"vsphere": 2 * 10 * 5 * 3 + 100 * 3, "kvm": 0.5 * 1000 * 3}
    assert table.note.startswith("EXAMPLE FIGURES")
    with pytest.raises(UserError, match=r"platforms.kvm.hosts: -1 is out of range; use a number between 0 and 100,000"):
        parse_costs({"currency": "EUR", "platforms": {"kvm": {"hosts": -1}}})
    with pytest.raises(UserError, match="'currency' is missing"):
        parse_costs({"platforms": {"kvm": {}}})


def test_default_baseline_and_errors():
    assert choose_platforms(["kvm", "vsphere"], None, None) == ("vsphere", "kvm")
    assert choose_platforms(["kvm-tuned", "kvm-default"], "kvm-default", None) == ("kvm-default", "kvm-tuned")
    with pytest.raises(UserError, match="platforms found: kvm-default, kvm-tuned; pass --baseline X --candidate Y"):
        choose_platforms(["kvm-tuned", "kvm-default"], None, None)
    with pytest.raises(UserError, match="platforms found: kvm"):
        choose_platforms(["kvm"], None, None)


def test_emulation_is_read_from_either_fact():
    base = dict(run_id="r", platform="kvm", cluster="c", started="2024-01-01T00:00:00Z")
    assert is_emulated(RunInfo(**base, hypervisor={"emulated": True}))
    assert is_emulated(RunInfo(**base, hypervisor={"domain_type": "qemu"}))
    assert is_emulated(RunInfo.from_json({**base, "emulated": True}))
    assert not is_emulated(RunInfo(**base, hypervisor={"domain_type": "kvm"}))


def test_bulk_reading_equals_per_folder_reading_and_isolates_a_corrupt_file(tmp_path):
    rng = np.random.default_rng(0)
    truth = [MetricTruth("a", 1.0, samples=3), MetricTruth("b", 2.0, samples=3)]
    write_platform(tmp_path, PlatformTruth("kvm", truth, runs=3), rng)
    write_platform(tmp_path, PlatformTruth("vsphere", truth, runs=2, status="running"), rng)  # JSONL only
    plain = load_runs([tmp_path])
    cat = load_runs([tmp_path], categorical=True)
    assert len(plain.samples) == len(cat.samples) == 5 * 6
    assert isinstance(cat.samples["metric"].dtype, pd.CategoricalDtype)
    key = ["run_id", "metric", "repetition"]
    a = plain.samples.astype({"run_id": str, "metric": str}).sort_values(key)["value"].to_numpy()
    b = cat.samples.astype({"run_id": str, "metric": str}).sort_values(key)["value"].to_numpy()
    assert np.array_equal(a, b)
    # one corrupt Parquet file: its run is read from its JSONL (kept after compaction), with a warning
    victim = sorted(tmp_path.glob("*kvm*"))[0]
    (victim / "samples.parquet").write_bytes(b"PAR1 garbage")
    rs = load_runs([tmp_path], categorical=True)
    assert len(rs.runs) == 5 and not rs.skipped and len(rs.samples) == 5 * 6
    assert any(victim.name in w and "JSONL is read instead" in w for w in rs.warnings)
    # ... and without its JSONL nothing else holds those records: only that folder is skipped
    (victim / "samples.jsonl").unlink()
    rs = load_runs([tmp_path], categorical=True)
    assert len(rs.runs) == 4 and len(rs.skipped) == 1 and victim.name in rs.skipped[0]
    assert len(rs.samples) == 4 * 6


def test_validation_matrix_uses_the_latest_run_and_ignores_skips():
    from reports.analysis import _criteria

    runs = [RunInfo(run_id=f"{p}{i}", platform=p, cluster="c", started=f"2024-01-0{i + 1}T00:00:00Z")
            for p in ("kvm", "vsphere") for i in range(3)]
    rows = []
    for p in ("kvm", "vsphere"):
        for i, status in enumerate(["failed", "passed", "skipped"] if p == "kvm" else ["passed"] * 3):
            rows.append({"run_id": f"{p}{i}", "platform": p, "criterion": "upgrade", "status": status,
                         "detail": f"night {i}", "duration_s": 1.0})
    # listed out of order: "latest" must come from run start times, not row order
    crit = pd.DataFrame(rows[::-1])
    (row,) = _criteria(crit, runs, ["vsphere", "kvm"])
    kvm = row.cells["kvm"]
    assert (kvm.status, kvm.detail) == ("skipped", "night 2")
    assert (kvm.passed, kvm.checked, kvm.runs) == (1, 2, 3)
    assert row.cells["vsphere"].pass_rate == 1.0
    assert row.fisher_p == pytest.approx(0.4)  # 3/3 vs 1/2


def test_svg_charts_escape_names_and_draw_every_run():
    from reports import charts

    colors = charts.color_for(["a<b>", "b"])
    box = charts.box_stats(8.0, 9.5, 10.0, 10.5, 12.0)
    medians = np.linspace(9, 11, 365)
    svg = charts.metric_chart("m.<script>x</script>", "s", [("a<b>", box, medians), ("b", None, np.array([]))],
                              [("a<b>", [f"2024-01-{d:02d}" for d in range(1, 29)], np.linspace(1, 2, 28), [14])], colors, "fr")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a&lt;b&gt;" in svg
    assert svg.count("h0") == 365 + 28  # one dot per run median, one per night
    assert "médiane par nuit (s)" in svg and 'stroke-dasharray="4 3"' in svg  # French label, one change point
    assert charts.nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
