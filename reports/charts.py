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
from matplotlib import rc_context  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

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
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def color_for(platforms: Sequence[str]) -> dict[str, str]:
    return {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(platforms)}


def distribution_chart(
    metric: str,
    unit: str,
    series: Sequence[tuple[str, np.ndarray, np.ndarray]],
    colors: dict[str, str],
) -> str:
    """Per platform: sample spread (box: quartiles, whiskers: 1st-99th percentile) under run medians (dots).

    The dots are the statistical unit; the box shows how noisy samples inside runs were.
    """
    with rc_context(STYLE):
        fig = Figure(figsize=(6.8, 0.55 + 0.55 * len(series)))
        ax = fig.add_subplot()
        rng = np.random.default_rng(0)  # jitter only; fixed so reports are reproducible
        for i, (platform, samples, medians) in enumerate(series):
            c = colors.get(platform, "#444")
            if len(samples):
                ax.bxp(
                    [_box_stats(samples)], positions=[i], vert=False, widths=0.5, showfliers=False,
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
        ax.grid(axis="x", color="#ddd", linewidth=0.5)
        return _data_uri(fig)


def _box_stats(v: np.ndarray) -> dict:
    q01, q25, q50, q75, q99 = np.quantile(v, [0.01, 0.25, 0.5, 0.75, 0.99])
    return {"whislo": q01, "q1": q25, "med": q50, "q3": q75, "whishi": q99, "fliers": []}


def stage_chart(stages: Sequence[str], platforms: Sequence[str], seconds: np.ndarray, unit: str) -> str:
    """Stacked horizontal bars: median time per build stage (columns) per platform (rows)."""
    with rc_context(STYLE):
        fig = Figure(figsize=(6.8, 0.8 + 0.45 * len(platforms)))
        ax = fig.add_subplot()
        left = np.zeros(len(platforms))
        for j, stage in enumerate(stages):
            width = np.nan_to_num(seconds[:, j])
            ax.barh(range(len(platforms)), width, left=left, height=0.55, label=stage,
                    color=PALETTE[j % len(PALETTE)], edgecolor="white", linewidth=0.5)
            left += width
        ax.set_yticks(range(len(platforms)), list(platforms))
        ax.invert_yaxis()
        ax.set_xlabel(f"median per stage ({unit})" if unit else "median per stage")
        ax.legend(ncols=min(len(stages), 4), loc="upper center", bbox_to_anchor=(0.5, -0.35 - 0.05 * len(platforms)),
                  frameon=False, fontsize=7)
        return _data_uri(fig)


def trend_chart(
    metric: str,
    unit: str,
    series: Sequence[tuple[str, Sequence, np.ndarray, Sequence[int]]],
    colors: dict[str, str],
) -> str:
    """Nightly median per platform, segment levels as steps, change points as dashed lines."""
    import matplotlib.dates as mdates

    with rc_context(STYLE):
        fig = Figure(figsize=(6.8, 2.1))
        ax = fig.add_subplot()
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
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
        ax.set_ylabel(unit)
        ax.grid(axis="y", color="#ddd", linewidth=0.5)
        ax.legend(frameon=False, fontsize=7, loc="best")
        return _data_uri(fig)
