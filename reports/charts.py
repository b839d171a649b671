"""Charts as PNG data URIs (matplotlib, Agg, no pyplot state), so the report is one file.

PNG rather than SVG: a distribution of a year of nights is thousands of marks, which makes
SVG heavy to embed and slow to print. Text is drawn with mathtext off so a metric or label
containing `$` is shown as typed.
"""

from __future__ import annotations

import base64
import io
from typing import Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from reports.i18n import language  # noqa: E402
from matplotlib import rc_context  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# Matplotlib 3.10 renamed bxp(vert=False) to orientation="horizontal".
_HORIZONTAL = (
    {"orientation": "horizontal"}
    if tuple(int(x) for x in matplotlib.__version__.split(".")[:2]) >= (3, 10)
    else {"vert": False}
)
PALETTE = ["#1f5fa8", "#c2571a", "#2f8f4e", "#8e44ad", "#7f7f7f", "#b8860b"]
STYLE = {
    "text.parse_math": False,
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",
}
DPI = 96


def _data_uri(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # Fixed margins instead of bbox_inches="tight" (which draws every figure twice), and fast
    # zlib: charts are a few per metric and a year of data must still render in seconds.
    fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def color_for(platforms: Sequence[str]) -> dict[str, str]:
    return {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(platforms)}


def _draw_distribution(ax, metric: str, unit: str, series, colors: dict[str, str]) -> None:
    rng = np.random.default_rng(0)  # jitter only; fixed so reports are reproducible
    for i, (platform, samples, medians) in enumerate(series):
        c = colors.get(platform, "#444")
        if len(samples):
            ax.bxp(
                [_box_stats(samples)], positions=[i], widths=0.5, **_HORIZONTAL, showfliers=False,
                patch_artist=True,
                boxprops={"facecolor": c + "33", "edgecolor": c},
                medianprops={"color": c}, whiskerprops={"color": c}, capprops={"color": c},
            )
        if len(medians):
            jitter = rng.uniform(-0.15, 0.15, len(medians))
            ax.scatter(medians, i + jitter, s=10, color=c, edgecolor="white", linewidth=0.4, zorder=3)
    ax.set_yticks(range(len(series)), [s[0] for s in series])
    ax.set_ylim(-0.6, len(series) - 0.4)
    ax.set_xlabel(f"{metric} ({unit})" if unit else metric)
    # Ticks are most of matplotlib's drawing time; a handful reads as well as a dozen.
    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.grid(axis="x", color="#ddd", linewidth=0.5)


def distribution_chart(
    metric: str,
    unit: str,
    series: Sequence[tuple[str, np.ndarray, np.ndarray]],
    colors: dict[str, str],
) -> str:
    """Per platform: sample spread (box: quartiles, whiskers: 1st-99th percentile) under run medians (dots).

    The dots are the statistical unit; the box shows how noisy samples inside runs were.
    """
    return metric_chart(metric, unit, series, [], colors)


def metric_chart(metric: str, unit: str, series, trend_series, colors: dict[str, str], lang: str = "en") -> str:
    """Distribution (top) and, when there are several nights, the nightly trend (bottom) in one image."""
    with rc_context(STYLE):
        dist_h = 0.75 + 0.5 * len(series)
        trend_h = 2.1 if trend_series else 0.0
        height = dist_h + trend_h
        fig = Figure(figsize=(6.8, height))
        if trend_series:
            ax1, ax2 = fig.subplots(2, 1, gridspec_kw={"height_ratios": [dist_h - 0.6, trend_h - 0.6]})
            fig.subplots_adjust(left=0.16, right=0.98, top=1 - 0.1 / height, bottom=0.35 / height, hspace=0.9 / (height / 2))
            _draw_distribution(ax1, metric, unit, series, colors)
            _draw_trend(ax2, unit, trend_series, colors, lang)
        else:
            fig.subplots_adjust(left=0.16, right=0.98, top=1 - 0.1 / height, bottom=0.5 / height)
            _draw_distribution(fig.add_subplot(), metric, unit, series, colors)
        return _data_uri(fig)


def _box_stats(v: np.ndarray) -> dict:
    q01, q25, q50, q75, q99 = np.quantile(v, [0.01, 0.25, 0.5, 0.75, 0.99])
    return {"whislo": q01, "q1": q25, "med": q50, "q3": q75, "whishi": q99, "fliers": []}


def stage_chart(stages: Sequence[str], platforms: Sequence[str], seconds: np.ndarray, unit: str, lang: str = "en") -> str:
    """Stacked horizontal bars: median time per build stage (columns) per platform (rows)."""
    with rc_context(STYLE):
        height = 1.3 + 0.45 * len(platforms)
        fig = Figure(figsize=(6.8, height))
        fig.subplots_adjust(left=0.16, right=0.98, top=1 - 0.45 / height, bottom=0.45 / height)
        ax = fig.add_subplot()
        left = np.zeros(len(platforms))
        for j, stage in enumerate(stages):
            width = np.nan_to_num(seconds[:, j])
            ax.barh(range(len(platforms)), width, left=left, height=0.55, label=stage,
                    color=PALETTE[j % len(PALETTE)], edgecolor="white", linewidth=0.5)
            left += width
        ax.set_yticks(range(len(platforms)), list(platforms))
        ax.invert_yaxis()
        _ = language(lang).gettext
        ax.set_xlabel(_("median per stage (%(unit)s)") % {"unit": unit} if unit else _("median per stage"))
        ax.legend(ncols=min(len(stages), 5), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, fontsize=7)
        return _data_uri(fig)


def _draw_trend(ax, unit: str, series, colors: dict[str, str], lang: str = "en") -> None:
    import matplotlib.dates as mdates

    for platform, nights, values, bkps in series:
        c = colors.get(platform, "#444")
        x = np.asarray(nights, dtype="datetime64[D]")
        ax.plot(x, values, color=c, linewidth=0.8, alpha=0.55, marker="." if len(x) < 60 else None,
                markersize=3, label=platform)
        edges = [0, *bkps, len(values)]
        for a, b in zip(edges[:-1], edges[1:]):
            level = float(np.median(values[a:b]))
            ax.plot([x[a], x[b - 1]], [level, level], color=c, linewidth=1.8)
        for b in bkps:
            ax.axvline(x[b], color=c, linestyle="--", linewidth=0.8)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))
    _ = language(lang).gettext
    ax.set_ylabel(_("nightly median (%(unit)s)") % {"unit": unit} if unit else _("nightly median"))
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.grid(axis="y", color="#ddd", linewidth=0.5)
    # A fixed corner: loc="best" tests every line point for overlap, slow on a year of nights.
    ax.legend(frameon=False, fontsize=7, loc="lower left", ncols=len(series))


def trend_chart(
    metric: str,
    unit: str,
    series: Sequence[tuple[str, Sequence, np.ndarray, Sequence[int]]],
    colors: dict[str, str],
) -> str:
    """Nightly median per platform, segment levels as steps, change points as dashed lines."""
    with rc_context(STYLE):
        fig = Figure(figsize=(6.8, 2.1))
        fig.subplots_adjust(left=0.1, right=0.98, top=0.95, bottom=0.2)
        _draw_trend(fig.add_subplot(), unit, series, colors)
        return _data_uri(fig)


_KINDS = {"metric": metric_chart, "distribution": distribution_chart, "trend": trend_chart, "stages": stage_chart}


def _render_job(job: tuple[str, tuple]) -> str:
    kind, args = job
    return _KINDS[kind](*args)


class Pending:
    """Charts being rendered; `get()` returns the data URIs in job order, `close()` always."""

    def __init__(self, jobs: list[tuple[str, tuple]], pool=None):
        self._jobs = jobs
        self._pool = pool
        self._async = None
        if pool is not None:
            workers = pool._processes  # noqa: SLF001 - only to size chunks
            self._async = pool.map_async(_render_job, jobs, chunksize=max(1, len(jobs) // (workers * 4)))

    def get(self) -> list[str]:
        if self._async is not None:
            return self._async.get()
        return [_render_job(j) for j in self._jobs]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


def start_many(jobs: list[tuple[str, tuple]], parallel_from: int = 16) -> Pending:
    """Start rendering chart jobs ("metric" | "distribution" | "trend" | "stages", args).

    Matplotlib draws on one core; a year of 60 metrics is 60 dense charts, so forked workers
    render them while the caller goes on. Fork (not spawn) so workers need not re-import
    matplotlib; small reports render serially on `get()`.
    """
    import multiprocessing as mp
    import os
    import threading

    workers = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8)
    # Forking a process that runs other threads can copy a held lock into the child; stay serial then.
    if (
        len(jobs) < parallel_from
        or workers < 2
        or "fork" not in mp.get_all_start_methods()
        or threading.active_count() > 1
    ):
        return Pending(jobs)
    return Pending(jobs, mp.get_context("fork").Pool(workers))


def render_many(jobs: list[tuple[str, tuple]], parallel_from: int = 16) -> list[str]:
    pending = start_many(jobs, parallel_from)
    try:
        return pending.get()
    finally:
        pending.close()
