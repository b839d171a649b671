"""Quantiles of a Prometheus histogram from its cumulative bucket counts, the way histogram_quantile() computes them."""

from __future__ import annotations

import math


def parse_buckets(text: str) -> list[tuple[float, float]]:
    """'0.001:2,0.002:124,...,+Inf:300' -> [(0.001, 2.0), ..., (inf, 300.0)]; ValueError when malformed.

    Cumulative counts must not decrease and the last bucket must be +Inf, as in Prometheus' text format.
    """
    buckets: list[tuple[float, float]] = []
    for part in text.split(","):
        le, sep, count = part.partition(":")
        if not sep:
            raise ValueError(f"bucket {part!r} is not le:count")
        bound, n = float(le), float(count)
        if not math.isfinite(n) or n < 0 or (buckets and (bound <= buckets[-1][0] or n < buckets[-1][1])):
            raise ValueError(f"bucket {part!r} breaks the order of a cumulative histogram")
        buckets.append((bound, n))
    if not buckets or buckets[-1][0] != math.inf:
        raise ValueError("the last bucket must be +Inf")
    return buckets


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile (0..1), interpolated linearly inside its bucket; None without observations.

    As Prometheus does: the first bucket starts at 0, and a quantile falling into +Inf is the
    largest finite bound (the histogram cannot say more).
    """
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == math.inf:
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
