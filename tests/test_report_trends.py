"""Nightly trends: steps found where they are, flat series left alone, acks silence known ones."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
import ruptures as rpt

from plumbing.errors import UserError
from reports import trends
from reports.model import Options

NIGHTS = [(dt.date(2024, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(365)]
ATTRS = pd.DataFrame({"unit": ["s", "MB/s"], "better": ["lower", "higher"], "suite": ["b", "n"]},
                     index=pd.Index(["build.duration", "net.throughput"], name="metric"))


def noisy(rng, n=365, level=100.0, sd=0.02):
    return level * (1 + rng.normal(0, sd, n))


def nightly(metric: str, platform: str, values) -> pd.DataFrame:
    return pd.DataFrame({"metric": metric, "platform": platform, "night": NIGHTS[: len(values)], "value": values})


@pytest.mark.parametrize("factor", [1.10, 1.05])
def test_step_is_found_within_two_nights(factor):
    rng = np.random.default_rng(int(factor * 100))
    for _ in range(20):
        at = int(rng.integers(40, 325))
        values = noisy(rng)
        values[at:] *= factor
        cps = trends.change_points(values)
        assert any(abs(c - at) <= 2 for c in cps), (at, cps)


def test_flat_noisy_series_yield_no_flag():
    rng = np.random.default_rng(1)
    frames = [nightly("build.duration", f"p{i}", noisy(rng)) for i in range(30)]
    found, _ = trends.analyse_trends(pd.concat(frames), ATTRS, [], Options())
    assert len(found) == 30
    assert not any(t.flagged for t in found)
    assert sum(len(t.change_points) for t in found) <= 1  # the detector's measured false-alarm rate is ~1/60


def test_regression_is_flagged_in_the_metrics_direction():
    rng = np.random.default_rng(2)
    slower = noisy(rng)
    slower[300:] *= 1.10  # duration up: worse
    faster_net = noisy(rng, level=900)
    faster_net[300:] *= 1.10  # throughput up: better
    lower_net = noisy(rng, level=900)
    lower_net[300:] *= 0.90  # throughput down: worse
    frame = pd.concat([nightly("build.duration", "kvm", slower), nightly("net.throughput", "kvm", faster_net),
                       nightly("net.throughput", "vsphere", lower_net)])
    found = {(t.metric, t.platform): t for t in trends.analyse_trends(frame, ATTRS, [], Options())[0]}
    assert found[("build.duration", "kvm")].flagged
    assert "regression since 2024-10-2" in found[("build.duration", "kvm")].message
    assert not found[("net.throughput", "kvm")].flagged
    assert found[("net.throughput", "vsphere")].flagged


def test_small_step_under_threshold_is_not_flagged():
    rng = np.random.default_rng(3)
    values = noisy(rng, sd=0.005)
    values[200:] *= 1.03
    (t,), _ = trends.analyse_trends(nightly("build.duration", "kvm", values), ATTRS, [], Options())
    assert t.change_points and not t.flagged
    (t,), _ = trends.analyse_trends(nightly("build.duration", "kvm", values), ATTRS, [],
                                    Options(regression_threshold=0.02))
    assert t.flagged


def test_no_change_point_with_too_few_nights():
    values = np.r_[np.full(8, 100.0), np.full(8, 150.0)]
    assert trends.change_points(values, min_segment=10) == []
    (t,), _ = trends.analyse_trends(nightly("build.duration", "kvm", values), ATTRS, [], Options())
    assert not t.flagged and "at least 10 nights" in t.message


def test_acknowledgement_silences_a_known_regression_once():
    rng = np.random.default_rng(4)
    values = noisy(rng)
    values[250:] *= 1.2
    frame = nightly("build.duration", "kvm", values)
    step_date = dt.date.fromisoformat(NIGHTS[250])
    ack = trends.Ack("build.duration", "kvm", step_date, "moved registry to slower storage, accepted")
    (t,), _ = trends.analyse_trends(frame, ATTRS, [ack], Options())
    assert not t.flagged
    assert "accepted" in t.change_points[-1].acknowledged
    # an ack for another platform, or written before the change, does not cover it
    other = trends.Ack("build.duration", "vsphere", step_date, "x")
    early = trends.Ack("build.duration", "kvm", step_date - dt.timedelta(days=30), "x")
    (t,), _ = trends.analyse_trends(frame, ATTRS, [other, early], Options())
    assert t.flagged
    # a new regression after the acknowledged one fires again
    values2 = values.copy()
    values2[330:] *= 1.2
    (t,), _ = trends.analyse_trends(nightly("build.duration", "kvm", values2), ATTRS, [ack], Options())
    assert t.flagged


def test_vectorised_binseg_matches_ruptures():
    rng = np.random.default_rng(5)
    for i in range(40):
        values = noisy(rng, n=int(rng.integers(30, 365)))
        n = len(values)
        values[int(n * 0.4):] *= rng.choice([1.0, 1.03, 1.1])
        if i % 2:
            values[int(n * 0.7):] *= 0.95
        pen = 3 * trends.robust_sigma(values) ** 2 * math.log(n) * rng.choice([0.2, 1.0])
        expected = rpt.Binseg(model="l2", min_size=10, jump=1).fit(values.reshape(-1, 1)).predict(pen=pen)[:-1]
        assert trends.binseg_l2(values, pen, 10) == expected


def test_parse_acks_and_errors(tmp_path):
    acks = trends.parse_acks([{"metric": "build.duration", "platform": "kvm", "date": "2024-05-01", "reason": "known"}])
    assert acks == [trends.Ack("build.duration", "kvm", dt.date(2024, 5, 1), "known")]
    assert trends.parse_acks({"acknowledgements": [{"metric": "m", "date": dt.date(2024, 1, 1), "reason": "r"}]})[0].platform == "*"
    with pytest.raises(UserError, match="entry 1: 'date' 'May 1st' is not a date; use YYYY-MM-DD"):
        trends.parse_acks([{"metric": "m", "date": "May 1st", "reason": "r"}])
    with pytest.raises(UserError, match="'reason' is missing"):
        trends.parse_acks([{"metric": "m", "date": "2024-01-01"}])
    bad = tmp_path / "acks.yaml"
    bad.write_text("- metric: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        trends.load_acks(bad)
