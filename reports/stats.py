"""Comparisons between two platforms on run-level values, and the verdicts built from them.

Inputs are one value per run (the run median of a metric). Pooling samples across runs makes
A/A comparisons call a difference 45-79 % of the time when runs vary by a few percent; on run
medians the tests below stay at their nominal level. Everything is pure numpy/scipy so
thousands of simulated comparisons run in seconds.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
# t and normal from reports.tdist, not scipy: importing scipy.stats (or scipy.special) costs every
# report's start 0.3-0.9 s; scipy.stats is imported only for the optional Mann-Whitney test.
from reports.model import MIN_RUNS, Comparison, Options
from reports.tdist import norm_ppf, t_ppf, t_sf


def welch(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Welch t on y - x: (difference, standard error, df, two-sided p)."""
    nx, ny = len(x), len(y)
    d = float(y.mean() - x.mean())
    vx = float(x.var(ddof=1)) / nx
    vy = float(y.var(ddof=1)) / ny
    se = math.sqrt(vx + vy)
    if se == 0.0:
        # Identical values within each side: either exactly equal or certainly different.
        return d, 0.0, float(nx + ny - 2), 1.0 if d == 0.0 else 0.0
    df = (vx + vy) ** 2 / (vx**2 / (nx - 1) + vy**2 / (ny - 1)) if vx > 0 or vy > 0 else float(nx + ny - 2)
    p = float(min(1.0, 2.0 * t_sf(abs(d) / se, df)))
    return d, se, df, p


def t_quantile(q: float, df: float) -> float:
    return t_ppf(q, df)


def welch_interval(d: float, se: float, df: float, level: float) -> tuple[float, float]:
    """The t interval that inverts Welch's test: it excludes 0 exactly when p < 1 - level.

    With 3 runs a side a bootstrap has 10 distinct resamples per side and covers far less
    than it claims; the t interval is the one that matches the test making the verdict.
    """
    if se == 0.0:
        return d, d
    q = t_quantile(1.0 - (1.0 - level) / 2.0, df)
    return d - q * se, d + q * se


def mann_whitney_p(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(y, x, alternative="two-sided").pvalue)


def hodges_lehmann_interval(x: np.ndarray, y: np.ndarray, level: float) -> tuple[float, float]:
    """Shifts δ of y - x that Mann–Whitney does not reject at 1 - level (test inversion).

    Between two consecutive pairwise differences the test's p is constant, so the bounds are
    found by bisection over the sorted differences with the same `mannwhitneyu` call that makes
    the verdict: the interval excludes 0 exactly when that test's p < 1 - level (no ties).
    """
    gamma = 1.0 - level
    diffs = np.sort((y[:, None] - x[None, :]).ravel())
    k = len(diffs)
    mids = np.concatenate(([diffs[0] - 1.0], (diffs[:-1] + diffs[1:]) / 2.0, [diffs[-1] + 1.0]))
    centre = int(np.searchsorted(mids, float(np.median(diffs))))
    centre = min(max(centre, 0), len(mids) - 1)

    def accepted(i: int) -> bool:
        return mann_whitney_p(x, y - mids[i]) >= gamma

    if not accepted(centre):
        m = float(np.median(diffs))
        return m, m
    lo_bad, lo_ok = -1, centre  # mids[lo_ok] accepted; search the first accepted index
    while lo_ok - lo_bad > 1:
        mid = (lo_bad + lo_ok) // 2
        lo_ok, lo_bad = (mid, lo_bad) if accepted(mid) else (lo_ok, mid)
    hi_ok, hi_bad = centre, len(mids)
    while hi_bad - hi_ok > 1:
        mid = (hi_ok + hi_bad) // 2
        hi_ok, hi_bad = (mid, hi_bad) if accepted(mid) else (hi_ok, mid)
    # The accepted cells span [diffs[lo_ok - 1], diffs[hi_ok]] (unbounded at the ends).
    lo = float(diffs[lo_ok - 1]) if lo_ok > 0 else -math.inf
    hi = float(diffs[hi_ok]) if hi_ok < k else math.inf
    return lo, hi


def runs_needed(sd: float, delta: float, alpha: float, power: float, cap: int = 10_000) -> int | None:
    """Runs per platform for a two-sided two-sample t test to detect `delta` with `power`.

    `sd` and `delta` on the same scale (log scale for ratios). Iterates the normal formula with
    t quantiles, which matters at the small run counts we live with.
    """
    if not math.isfinite(sd) or delta <= 0:
        return None
    if sd == 0.0:
        return MIN_RUNS
    n = 2.0 * ((norm_ppf(1 - alpha / 2) + norm_ppf(power)) * sd / delta) ** 2
    for _ in range(8):
        df = max(2.0 * n - 2.0, 1.0)
        previous, n = n, 2.0 * ((t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * sd / delta) ** 2
        if abs(n - previous) < 1e-3 or n > 10 * cap:
            break
    n = math.ceil(n)
    return max(MIN_RUNS, min(n, cap))


def compare_runs(
    base: Sequence[float] | np.ndarray,
    cand: Sequence[float] | np.ndarray,
    opts: Options = Options(),
    rng: np.random.Generator | None = None,  # unused since intervals are t/test-inversion; kept for callers
) -> Comparison:
    """Compare run-level values (one per run) of one metric: candidate relative to baseline."""
    x_raw = np.asarray(base, dtype=float)
    y_raw = np.asarray(cand, dtype=float)
    x_raw = x_raw[np.isfinite(x_raw)]
    y_raw = y_raw[np.isfinite(y_raw)]
    nx, ny = len(x_raw), len(y_raw)
    # Ratios are what management reads ("12 % longer"), so work on the log scale when we can.
    log_scale = nx > 0 and ny > 0 and bool((x_raw > 0).all() and (y_raw > 0).all())
    x = np.log(x_raw) if log_scale else x_raw
    y = np.log(y_raw) if log_scale else y_raw

    cv_base = _cv(x_raw)
    cv_cand = _cv(y_raw)
    result = Comparison(
        n_base=nx, n_cand=ny, ratio=None, ci_low=None, ci_high=None, p_value=None, effect_size=None,
        cv_base=cv_base, cv_cand=cv_cand, runs_needed=None, test="", log_scale=log_scale,
    )
    if nx == 0 or ny == 0:
        return result
    base_level = float(x_raw.mean())

    def to_ratio(diff: float) -> float | None:
        if log_scale:
            return float(math.exp(diff))
        return None if base_level <= 0 else float(1.0 + diff / base_level)

    result.ratio = to_ratio(float(y.mean() - x.mean()))
    if nx < 2 or ny < 2:
        sd = _pooled_sd(x, y)
        result.runs_needed = _needed(sd, log_scale, base_level, opts)
        return result

    d, se, _df, p = welch(x, y)
    result.p_value, result.test = p, "Welch t"
    if _uses_mann_whitney(nx, ny, opts):
        result.p_value = mann_whitney_p(x, y)
        result.test = "Mann-Whitney U"
    sd = _pooled_sd(x, y)
    if sd > 0:
        j = 1.0 - 3.0 / (4.0 * (nx + ny) - 9.0)  # Hedges' small-sample correction
        result.effect_size = float(d / sd * j)
    elif d == 0:
        result.effect_size = 0.0
    result.runs_needed = _needed(sd, log_scale, base_level, opts)
    if nx >= MIN_RUNS and ny >= MIN_RUNS:
        # A family of one: the interval at 1 - alpha. A report's family of metrics narrows it to
        # each metric's Holm level with `interval` (analysis does).
        level = 1.0 - opts.alpha
        result.ci_low, result.ci_high = interval(base, cand, level, opts)
        result.ci_level = level
    return result


def _uses_mann_whitney(nx: int, ny: int, opts: Options) -> bool:
    return opts.test == "mannwhitney" and nx >= 4 and ny >= 4


def interval(
    base: Sequence[float] | np.ndarray, cand: Sequence[float] | np.ndarray, level: float, opts: Options = Options()
) -> tuple[float | None, float | None]:
    """Confidence interval of the candidate/baseline ratio at `level`, from the test that makes the verdict.

    Welch: the t interval on the same scale (log when all values are positive). Mann–Whitney:
    the Hodges–Lehmann interval found by inverting the same test. Either way the interval
    excludes a ratio of 1 exactly when that test's p is below 1 - level.
    """
    x_raw = np.asarray(base, dtype=float)
    y_raw = np.asarray(cand, dtype=float)
    x_raw, y_raw = x_raw[np.isfinite(x_raw)], y_raw[np.isfinite(y_raw)]
    if len(x_raw) < 2 or len(y_raw) < 2:
        return None, None
    log_scale = bool((x_raw > 0).all() and (y_raw > 0).all())
    x, y = (np.log(x_raw), np.log(y_raw)) if log_scale else (x_raw, y_raw)
    if _uses_mann_whitney(len(x), len(y), opts):
        lo, hi = hodges_lehmann_interval(x, y, level)
    else:
        d, se, df, _p = welch(x, y)
        lo, hi = welch_interval(d, se, df, level)
    base_level = float(x_raw.mean())

    def to_ratio(diff: float) -> float | None:
        if log_scale:
            return float(math.exp(diff)) if math.isfinite(diff) else (0.0 if diff < 0 else math.inf)
        return None if base_level <= 0 else float(1.0 + diff / base_level)

    return to_ratio(lo), to_ratio(hi)


def holm_levels(pvalues: Sequence[float | None], alpha: float,
                weights: Sequence[float] | None = None) -> list[float | None]:
    """Per metric, the confidence level that makes its interval agree with Holm's verdict.

    Holm tests the metric of rank k at alpha · w_k / (weight still untested), stepping down while
    it rejects: its adjusted p (uncapped) is p times an effective multiplier M. An interval at
    1 - alpha / M excludes "no change" exactly when p·M < alpha, i.e. when Holm rejects. With
    equal weights and no running maximum M is m - k + 1 (Bonferroni for the smallest p).
    """
    out: list[float | None] = [None] * len(pvalues)
    for i, p, running, step in _holm_steps(pvalues, weights):
        multiplier = running / p if p > 0 else step
        out[i] = 1.0 - alpha / max(multiplier, 1.0)
    return out


def _cv(v: np.ndarray) -> float | None:
    if len(v) < 2:
        return None
    m = float(v.mean())
    if m <= 0:
        return None
    return float(v.std(ddof=1) / m)


def _pooled_sd(x: np.ndarray, y: np.ndarray) -> float:
    dof = (len(x) - 1) + (len(y) - 1)
    if dof <= 0:
        return float("nan")
    ss = (len(x) - 1) * (x.var(ddof=1) if len(x) > 1 else 0.0) + (len(y) - 1) * (y.var(ddof=1) if len(y) > 1 else 0.0)
    return float(math.sqrt(ss / dof))


def _needed(sd: float, log_scale: bool, base_level: float, opts: Options) -> int | None:
    if log_scale:
        return runs_needed(sd, math.log1p(opts.detectable_difference), opts.alpha, opts.power)
    if base_level <= 0:
        return None
    return runs_needed(sd, opts.detectable_difference * base_level, opts.alpha, opts.power)


def holm(pvalues: Sequence[float | None], weights: Sequence[float] | None = None) -> list[float | None]:
    """Holm step-down adjusted p-values; None stays None (not part of the family).

    With weights (Holm 1979, weighted form) a metric named before the runs can carry more of
    alpha than the others: it is tested at alpha · w / (weight of the metrics not yet rejected),
    so a pre-registered primary metric is not drowned by the secondary ones, and the family-wise
    error rate stays at alpha. Equal weights are plain Holm.
    """
    out: list[float | None] = [None] * len(pvalues)
    for i, _p, running, _step in _holm_steps(pvalues, weights):
        out[i] = min(1.0, running)
    return out


def _holm_steps(pvalues: Sequence[float | None], weights: Sequence[float] | None):
    """(index, p, running maximum of p·M, M) in Holm's order, smallest p/w first.

    M = weight not yet tested / w: the step's Bonferroni-like multiplier.
    """
    idx = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    w = [1.0] * len(pvalues) if weights is None else [float(x) for x in weights]
    if len(w) != len(pvalues) or any(not w[i] > 0 for i in idx):
        raise ValueError("holm: one positive weight per p-value")
    remaining = sum(w[i] for i in idx)
    running = 0.0
    for i in sorted(idx, key=lambda k: float(pvalues[k]) / w[k]):  # type: ignore[arg-type]
        p = float(pvalues[i])  # type: ignore[arg-type]
        step = remaining / w[i]
        running = max(running, p * step)
        remaining -= w[i]
        yield i, p, running, step


def noisy(c: Comparison, opts: Options = Options()) -> bool:
    """Do the runs of either side vary by more than opts.cv_limit (CV of run medians)?"""
    return any(v is not None and v > opts.cv_limit for v in (c.cv_base, c.cv_cand))


def verdict(c: Comparison, p_holm: float | None, better: str, opts: Options = Options()) -> str:
    """better / worse when Holm's test says so; otherwise why not.

    Runs that vary past opts.cv_limit turn only an inconclusive result into "variance too high"
    (the noise may hide a difference: fix it before adding runs). A significant difference keeps
    its verdict even then, flagged noisy: Welch's test already weighs the spread, and withholding
    it buys no protection. `python benchmarks/cv_gate.py` (log-normal run medians, 4 runs a side,
    20 000 comparisons per scenario): under A/A with one side's CV ~30 % and the other's ~7 %, false
    calls come at 5.8 % without the gate and 5.7 % with it; at 50 % against 5 %, 5.4 % and 4.1 %;
    with runs on two levels x2 apart, 12.6 % either way (4 runs cannot show a second level, and
    the gate cannot either). Against a true x1.5 shift at 30 % vs 7 % it finds 47.8 % instead of 35.5 %.
    """
    if c.n_base < MIN_RUNS or c.n_cand < MIN_RUNS:
        return "not enough samples"
    if p_holm is None or p_holm >= opts.alpha or c.ratio is None or c.ratio == 1.0:
        return "variance too high" if noisy(c, opts) else "no significant difference"
    higher = c.ratio > 1.0
    if better == "higher":
        return "better" if higher else "worse"
    return "worse" if higher else "better"


def fisher_pass_rates(passed_a: int, checked_a: int, passed_b: int, checked_b: int) -> float | None:
    """Two-sided Fisher's exact test: do the pass rates of two platforms differ?

    Summed directly over the hypergeometric tables (as scipy.stats.fisher_exact does, same
    relative tolerance): importing scipy.stats for this costs every report ~0.9 s.
    """
    if checked_a <= 0 or checked_b <= 0:
        return None
    a, r1, r2 = passed_a, checked_a, checked_b
    c1 = passed_a + passed_b
    n = r1 + r2

    def log_p(x: int) -> float:
        return _log_choose(r1, x) + _log_choose(r2, c1 - x) - _log_choose(n, c1)

    observed = log_p(a)
    total = 0.0
    for x in range(max(0, c1 - r2), min(r1, c1) + 1):
        lp = log_p(x)
        if lp <= observed + math.log1p(1e-7):
            total += math.exp(lp)
    return min(1.0, total)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
