"""Which samples cannot be true, and why: excluded from the analysis and listed in the report.

A negative duration is what clock skew between a test runner and a node produces; a NaN is a
measurement that failed without raising. Either would distort medians silently, so they are
dropped here, vectorised, with a reason per row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.i18n import N_  # reasons are msgids, translated where the report shows them

TIME_UNITS = frozenset({"s", "ms", "us", "µs", "ns", "min", "h", "seconds", "milliseconds"})
# Units whose values cannot be negative. Unknown units (e.g. a signed delta) are left alone.
NON_NEGATIVE_UNITS = TIME_UNITS | frozenset(
    {
        "count", "ratio", "%", "percent",
        "B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB", "bytes",
        "B/s", "KB/s", "MB/s", "GB/s", "KiB/s", "MiB/s", "GiB/s", "bit/s", "Mbit/s", "Gbit/s",
        "ops/s", "req/s", "iops", "IOPS", "pods/s", "builds/h",
    }
)
BETTER_VALUES = ("lower", "higher")


def split_invalid(samples: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (valid samples, invalid samples with a `reason` column)."""
    if samples.empty:
        return samples, samples.assign(reason=pd.Series(dtype="string"))
    value = samples["value"].to_numpy(dtype="float64", na_value=np.nan)
    # isin/eq work on categorical codes without materialising a million strings
    unit, better, metric = samples["unit"], samples["better"], samples["metric"]

    reason = np.full(len(samples), "", dtype=object)
    negative = value < 0
    is_time = unit.isin(TIME_UNITS).to_numpy()
    non_negative = unit.isin(NON_NEGATIVE_UNITS).to_numpy()
    # Later assignments win: the most specific reason is the one listed.
    reason[negative & non_negative & ~is_time] = N_("negative value for a unit that cannot be negative")
    reason[negative & is_time] = N_("negative duration (clock skew between runner and node?)")
    reason[~better.isin(BETTER_VALUES).to_numpy()] = N_("`better` is neither 'lower' nor 'higher'")
    reason[(metric.isna() | metric.eq("")).to_numpy(dtype=bool)] = N_("no metric name")
    reason[~np.isfinite(value)] = N_("not a finite number (NaN or infinite)")

    bad = reason != ""
    if not bad.any():
        return samples, samples.iloc[0:0].assign(reason=pd.Series(dtype="string"))
    invalid = samples.loc[bad].assign(reason=reason[bad])
    return samples.loc[~bad], invalid
