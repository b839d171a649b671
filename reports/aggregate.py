"""Per-(run, metric) aggregation: the statistical unit is the run, never the sample.

Samples within one run share a cluster, a night and a host load, so everything downstream
(tests, CIs, trends) works on the run medians computed here. Sample-level figures (quantiles,
spread) are descriptive only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.i18n import ENGLISH, Language

QUANTILES = (0.5, 0.9, 0.95, 0.99)


def categorize(samples: pd.DataFrame, columns=("run_id", "platform", "metric", "unit", "better", "suite")) -> pd.DataFrame:
    """Grouping keys as categoricals: a million-row groupby on strings is several times slower."""
    out = samples.copy(deep=False)
    for c in columns:
        if c in out and not isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype("category")
    return out


def metric_attributes(samples: pd.DataFrame, tr: Language = ENGLISH) -> tuple[pd.DataFrame, list[str]]:
    """unit / better / suite per metric (the most common value) and warnings where runs disagree."""
    warnings: list[str] = []
    if samples.empty:
        return pd.DataFrame(columns=["unit", "better", "suite"]).rename_axis("metric"), warnings
    cols = {}
    for attr in ("unit", "better", "suite"):
        counts = samples.groupby(["metric", attr], observed=True).size()
        counts = counts[counts > 0].sort_values(ascending=False)
        counts = counts.reset_index()
        first = counts.drop_duplicates("metric").set_index("metric")[attr]
        cols[attr] = first.astype(str)
        if attr != "suite":
            n = counts.groupby("metric", observed=True)[attr].nunique()
            for metric in n[n > 1].index:
                values = ", ".join(sorted(counts.loc[counts["metric"] == metric, attr].astype(str)))
                warnings.append(
                    tr.gettext("metric %(metric)s: runs disagree on %(attr)s (%(values)s); using %(used)s")
                    % {"metric": metric, "attr": attr, "values": values, "used": repr(cols[attr][metric])}
                )
    attrs = pd.DataFrame(cols)
    attrs.index = attrs.index.astype(str)
    attrs.index.name = "metric"
    return attrs, warnings


def run_medians(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, metric): platform, median, mean, n (samples)."""
    if samples.empty:
        return pd.DataFrame(
            {
                "run_id": pd.Series(dtype=str),
                "metric": pd.Series(dtype=str),
                "platform": pd.Series(dtype=str),
                "median": pd.Series(dtype=float),
                "mean": pd.Series(dtype=float),
                "n": pd.Series(dtype=int),
            }
        )
    g = samples.groupby(["run_id", "metric"], observed=True, sort=False)
    out = g["value"].agg(["median", "mean", "size"]).rename(columns={"size": "n"})
    platform = g["platform"].first()
    out["platform"] = platform.astype(str)
    out = out.reset_index()
    out["run_id"] = out["run_id"].astype(str)
    out["metric"] = out["metric"].astype(str)
    return out[["run_id", "metric", "platform", "median", "mean", "n"]]


def sample_quantiles(samples: pd.DataFrame, qs=QUANTILES) -> pd.DataFrame:
    """Sample-level quantiles per (platform, metric), via one sort instead of per-group calls."""
    if samples.empty:
        return pd.DataFrame(columns=["platform", "metric", "n", *[qname(q) for q in qs]])
    df = pd.DataFrame(
        {
            "platform": samples["platform"].astype("category"),
            "metric": samples["metric"].astype("category"),
            "value": samples["value"].to_numpy(dtype=float),
        }
    )
    pc = df["platform"].cat.codes.to_numpy(np.int64)
    mc = df["metric"].cat.codes.to_numpy(np.int64)
    key = pc * (len(df["metric"].cat.categories) + 1) + mc
    order = np.lexsort((df["value"].to_numpy(), key))
    key_sorted = key[order]
    values = df["value"].to_numpy()[order]
    starts = np.flatnonzero(np.r_[True, key_sorted[1:] != key_sorted[:-1]])
    ends = np.r_[starts[1:], len(key_sorted)]
    counts = ends - starts
    rows = {
        "platform": df["platform"].cat.categories.astype(str)[pc[order][starts]],
        "metric": df["metric"].cat.categories.astype(str)[mc[order][starts]],
        "n": counts,
    }
    for q in qs:
        # linear interpolation, as numpy.quantile's default
        pos = starts + (counts - 1) * q
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, ends - 1)
        frac = pos - lo
        rows[qname(q)] = values[lo] * (1 - frac) + values[hi] * frac
    return pd.DataFrame(rows)


def qname(q: float) -> str:
    return f"p{q * 100:g}"
