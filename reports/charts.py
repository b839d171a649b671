"""Charts as inline SVG written directly (no plotting library): distribution, nightly trend, build stages.

Matplotlib took ~5 s for a year of 60 metrics plus ~0.5 s to import, most of a large report's
time; these charts are a few hundred bytes of markup each, drawn in milliseconds. The run
medians of a year are one <path> of round dots, not one element per dot, so the page stays
light. Every text (metric names, labels from results) is escaped; axis labels come from the
report's language, numbers and dates are formatted by it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from markupsafe import Markup, escape

from reports.i18n import Language, language

PALETTE = ["#1f5fa8", "#c2571a", "#2f8f4e", "#8e44ad", "#7f7f7f", "#b8860b"]
WIDTH = 640
LEFT, RIGHT = 110, 14  # room for platform names on the left
FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'
ROW = 34  # height of one platform's row in the distribution panel


def color_for(platforms: Sequence[str]) -> dict[str, str]:
    return {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(platforms)}


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2, 2.5 or 5 × 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        span = abs(lo) * 0.1 or 1.0
        lo, hi = lo - span, hi + span
    raw = (hi - lo) / max(count, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(round(v, 12))
        v += step
    return ticks


class _Scale:
    def __init__(self, lo: float, hi: float, a: float, b: float):
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            pad = abs(lo) * 0.05 if math.isfinite(lo) and lo else 1.0
            lo, hi = (lo - pad, hi + pad) if math.isfinite(lo) else (0.0, 1.0)
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v):
        return self.a + (np.asarray(v, dtype=float) - self.lo) / (self.hi - self.lo) * (self.b - self.a)


def _f(v: float) -> str:
    return f"{v:.1f}"


def _text(x: float, y: float, s: str, anchor: str = "start", size: int = 11, fill: str = "#1d232b", extra: str = "") -> str:
    return f'<text x="{_f(x)}" y="{_f(y)}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{extra}>{escape(s)}</text>'


def _x_axis(scale: _Scale, y: float, top: float, tr: Language, label: str) -> list[str]:
    out = [f'<line x1="{_f(scale.a)}" x2="{_f(scale.b)}" y1="{_f(y)}" y2="{_f(y)}" stroke="#888"/>']
    for t in nice_ticks(scale.lo, scale.hi):
        x = float(scale(t))
        out.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(top)}" y2="{_f(y)}" stroke="#e3e3e3"/>')
        out.append(_text(x, y + 13, tr.num(t), "middle", 10))
    out.append(_text((scale.a + scale.b) / 2, y + 28, label, "middle", 11))
    return out


def _dots(xs: np.ndarray, ys: np.ndarray, color: str, size: float = 5.0) -> str:
    """Many dots as one path of zero-length round-capped segments."""
    if len(xs) == 0:
        return ""
    d = "".join(f"M{x:.1f} {y:.1f}h0" for x, y in zip(xs, ys))
    return f'<path d="{d}" stroke="{color}" stroke-width="{size}" stroke-linecap="round" opacity="0.85"/>'


def distribution_svg(
    metric: str, unit: str, series: Sequence[tuple[str, dict | None, np.ndarray]], colors: dict[str, str], tr: Language
) -> tuple[list[str], float]:
    """Per platform: sample spread (box: quartiles, whiskers: 1st-99th percentile) under run medians (dots)."""
    values = [v for _p, box, med in series for v in ([box["whislo"], box["whishi"]] if box else []) + list(med)]
    values = [v for v in values if math.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (hi - lo) * 0.04 or (abs(hi) * 0.05 or 1.0)
    scale = _Scale(lo - pad, hi + pad, LEFT, WIDTH - RIGHT)
    ticks = nice_ticks(scale.lo, scale.hi)
    if ticks:  # let the axis end on round values when they are close
        scale = _Scale(min(scale.lo, ticks[0]), max(scale.hi, ticks[-1]), LEFT, WIDTH - RIGHT)
    top = 8.0
    bottom = top + ROW * len(series)
    out = _x_axis(scale, bottom, top, tr, f"{metric} ({unit})" if unit else metric)
    rng = np.random.default_rng(0)  # jitter only; fixed so reports are reproducible
    for i, (platform, box, medians) in enumerate(series):
        c = colors.get(platform, "#444")
        yc = top + ROW * i + ROW / 2
        out.append(_text(LEFT - 8, yc + 4, platform, "end", 11))
        if box:
            x01, x25, x50, x75, x99 = (float(scale(box[k])) for k in ("whislo", "q1", "med", "q3", "whishi"))
            h = ROW * 0.5
            out.append(f'<line x1="{_f(x01)}" x2="{_f(x25)}" y1="{_f(yc)}" y2="{_f(yc)}" stroke="{c}"/>')
            out.append(f'<line x1="{_f(x75)}" x2="{_f(x99)}" y1="{_f(yc)}" y2="{_f(yc)}" stroke="{c}"/>')
            for x in (x01, x99):
                out.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(yc - h / 4)}" y2="{_f(yc + h / 4)}" stroke="{c}"/>')
            out.append(f'<rect x="{_f(x25)}" y="{_f(yc - h / 2)}" width="{_f(max(x75 - x25, 0.5))}" height="{_f(h)}" '
                       f'fill="{c}" fill-opacity="0.18" stroke="{c}"/>')
            out.append(f'<line x1="{_f(x50)}" x2="{_f(x50)}" y1="{_f(yc - h / 2)}" y2="{_f(yc + h / 2)}" stroke="{c}" stroke-width="2"/>')
        med = np.asarray(medians, dtype=float)
        med = med[np.isfinite(med)]
        if len(med):
            out.append(_dots(scale(med), yc + rng.uniform(-ROW * 0.22, ROW * 0.22, len(med)), c))
    return out, bottom + 36


def trend_svg(
    unit: str, series: Sequence[tuple[str, Sequence, np.ndarray, Sequence[int]]], colors: dict[str, str], tr: Language, y0: float
) -> tuple[list[str], float]:
    """Nightly median per platform, segment levels as steps, change points as dashed lines."""
    _ = tr.gettext
    days = [np.asarray(n, dtype="datetime64[D]").astype(np.int64) for _p, n, _v, _b in series]
    vals = [np.asarray(v, dtype=float) for _p, _n, v, _b in series]
    all_d = np.concatenate(days)
    all_v = np.concatenate(vals)
    all_v = all_v[np.isfinite(all_v)]
    height = 150.0
    top, bottom = y0 + 18, y0 + 18 + height
    xs = _Scale(float(all_d.min()), float(all_d.max()), LEFT, WIDTH - RIGHT)
    lo, hi = (float(all_v.min()), float(all_v.max())) if len(all_v) else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or (abs(hi) * 0.05 or 1.0)
    ys = _Scale(lo - pad, hi + pad, bottom, top)
    out = [f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_f(bottom)}" y2="{_f(bottom)}" stroke="#888"/>']
    for t in nice_ticks(ys.lo, ys.hi, 4):
        y = float(ys(t))
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_f(y)}" y2="{_f(y)}" stroke="#e3e3e3"/>')
        out.append(_text(LEFT - 6, y + 4, tr.num(t), "end", 10))
    span = int(all_d.max() - all_d.min())
    for t in nice_ticks(float(all_d.min()), float(all_d.max()), 5) if span >= 4 else sorted(set(all_d.tolist())):
        day = np.datetime64(int(round(t)), "D")
        x = float(xs(float(day.astype(np.int64))))
        out.append(_text(x, bottom + 13, tr.date(str(day)), "middle", 10))
    label = _("nightly median (%(unit)s)") % {"unit": unit} if unit else _("nightly median")
    out.append(_text(LEFT, top - 6, label, "start", 10, "#5b6570"))
    legend_x = WIDTH - RIGHT
    for (platform, _n, _v, _b) in reversed(series):
        c = colors.get(platform, "#444")
        out.append(_text(legend_x, top - 6, platform, "end", 10, c, ' font-weight="bold"'))
        legend_x -= 9 + 6.5 * len(platform)
    for (platform, _n, _v, bkps), d, v in zip(series, days, vals):
        c = colors.get(platform, "#444")
        px, py = xs(d), ys(v)
        path = "M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in zip(px, py) if math.isfinite(y))
        out.append(f'<path d="{path}" fill="none" stroke="{c}" stroke-width="1" opacity="0.55"/>')
        if len(d) < 60:
            out.append(_dots(px, py, c, 3.5))
        edges = [0, *bkps, len(v)]
        for a, b in zip(edges[:-1], edges[1:]):
            level = float(ys(float(np.median(v[a:b]))))
            out.append(f'<line x1="{_f(float(px[a]))}" x2="{_f(float(px[b - 1]))}" y1="{_f(level)}" y2="{_f(level)}" '
                       f'stroke="{c}" stroke-width="2.2"/>')
        for b in bkps:
            out.append(f'<line x1="{_f(float(px[b]))}" x2="{_f(float(px[b]))}" y1="{_f(top)}" y2="{_f(bottom)}" '
                       f'stroke="{c}" stroke-dasharray="4 3"/>')
    return out, bottom + 20


def _svg(parts: list[str], height: float, title: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {_f(height)}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" {FONT}><title>{escape(title)}</title>' + "".join(parts) + "</svg>"
    )


def metric_chart(metric: str, unit: str, series, trend_series, colors: dict[str, str], lang: str = "en") -> Markup:
    """Distribution (top) and, when there are several nights, the nightly trend (bottom) in one SVG.

    series: (platform, box stats {whislo, q1, med, q3, whishi} or None, run medians) per platform;
    trend_series: (platform, nights (ISO dates), nightly values, change-point indices).
    """
    tr = language(lang)
    _ = tr.gettext
    parts, y = distribution_svg(metric, unit, series, colors, tr)
    if trend_series:
        more, y = trend_svg(unit, trend_series, colors, tr, y)
        parts += more
        title = _("Distribution and nightly trend of %(metric)s") % {"metric": metric}
    else:
        title = _("Distribution of %(metric)s") % {"metric": metric}
    return _svg(parts, y, title)


def stage_chart(stages: Sequence[str], platforms: Sequence[str], seconds: np.ndarray, unit: str, lang: str = "en") -> Markup:
    """Stacked horizontal bars: median time per build stage (columns) per platform (rows)."""
    tr = language(lang)
    _ = tr.gettext
    totals = np.nansum(np.nan_to_num(seconds), axis=1) if seconds.size else np.zeros(len(platforms))
    legend_rows = math.ceil(len(stages) / 4)
    top = 8 + 16 * legend_rows
    scale = _Scale(0.0, float(max(totals.max() if len(totals) else 0.0, 1e-9)) * 1.02, LEFT, WIDTH - RIGHT)
    bottom = top + ROW * len(platforms)
    label = _("median per stage (%(unit)s)") % {"unit": unit} if unit else _("median per stage")
    parts = _x_axis(scale, bottom, top, tr, label)
    for j, stage in enumerate(stages):
        c = PALETTE[j % len(PALETTE)]
        lx, ly = LEFT + (j % 4) * ((WIDTH - LEFT - RIGHT) / 4), 8 + 16 * (j // 4)
        parts.append(f'<rect x="{_f(lx)}" y="{_f(ly)}" width="10" height="10" fill="{c}"/>')
        parts.append(_text(lx + 14, ly + 9, stage, "start", 10))
    for i, platform in enumerate(platforms):
        yc = top + ROW * i + ROW / 2
        parts.append(_text(LEFT - 8, yc + 4, platform, "end", 11))
        left = 0.0
        for j in range(len(stages)):
            w = float(np.nan_to_num(seconds[i, j]))
            x0, x1 = float(scale(left)), float(scale(left + w))
            parts.append(f'<rect x="{_f(x0)}" y="{_f(yc - ROW * 0.3)}" width="{_f(max(x1 - x0, 0.0))}" '
                         f'height="{_f(ROW * 0.6)}" fill="{PALETTE[j % len(PALETTE)]}" stroke="#fff"/>')
            left += w
    return _svg(parts, bottom + 36, _("Median time per build stage and platform"))


def box_stats(q01: float, q25: float, q50: float, q75: float, q99: float) -> dict:
    return {"whislo": q01, "q1": q25, "med": q50, "q3": q75, "whishi": q99}
