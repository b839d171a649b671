"""The report's Resilience section: per disruption, the run-level comparison of what it cost,
a sentence management reads, and the timeline of one representative event (pure + one chart).

The comparisons are the executive summary's rows for the `resilience.<disruption>.<measure>`
metrics (run medians, Welch/Mann-Whitney, Holm, bootstrap CIs: reports/stats.py): nothing is
recomputed here, only regrouped and put into words.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable, Sequence

from reports import charts
from reports.i18n import translations
from reports.model import MetricRow
from results.store import RunSet
from results.timeline import Timeline, read_timelines

PREFIX = "resilience."
MEASURES = ("unavailable_s", "errors", "detect_s", "recover_s", "downtime_ms", "p99_ms", "migration_s")
ORDER = ("power-off", "reset", "reboot", "freeze", "migrate")
NAMES = {"power-off": "power-off", "reset": "hard reset", "reboot": "graceful reboot", "freeze": "freeze",
         "migrate": "live migration"}


@dataclass
class DisruptionBlock:
    disruption: str
    rows: list[MetricRow]  # the summary rows of resilience.<disruption>.*, in MEASURES order
    sentence: str


@dataclass
class ResilienceSection:
    blocks: list[DisruptionBlock]
    chart: str | None = None  # data URI of the representative timeline
    chart_caption: str = ""
    notes: list[str] = field(default_factory=list)


def split_metric(metric: str) -> tuple[str, str] | None:
    """'resilience.power-off.unavailable_s' -> ('power-off', 'unavailable_s')."""
    if not metric.startswith(PREFIX):
        return None
    rest = metric[len(PREFIX):]
    disruption, _, measure = rest.rpartition(".")
    return (disruption, measure) if disruption and measure else None


def _seconds(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f} s" if v >= 10 else f"{v:.1f} s"


def management_sentence(disruption: str, unavailable: MetricRow | None, errors: MetricRow | None,
                        gettext: Callable[[str], str]) -> str:
    """'a worker power-off cost 41 s of partial unavailability on kvm and 38 s on vsphere: no significant difference.'"""
    _ = gettext
    name = _(NAMES.get(disruption, disruption))
    row = unavailable or errors
    if row is None:
        return _("A worker %(name)s was not measured.") % {"name": name}
    if unavailable is not None:
        text = _("A worker %(name)s cost %(cand)s of partial unavailability on %(c)s and %(base)s on %(b)s: %(verdict)s.") % {
            "name": name, "cand": _seconds(unavailable.median_cand), "c": unavailable.candidate,
            "base": _seconds(unavailable.median_base), "b": unavailable.baseline, "verdict": _(unavailable.verdict)}
    else:
        text = ""
    if errors is not None and disruption == "migrate":
        text += " " + _("Failed requests per migration (run median): %(cand)s on %(c)s, %(base)s on %(b)s.") % {
            "cand": "n/a" if errors.median_cand is None else f"{errors.median_cand:.3g}", "c": errors.candidate,
            "base": "n/a" if errors.median_base is None else f"{errors.median_base:.3g}", "b": errors.baseline}
    return text.strip()


def blocks(summary: Sequence[MetricRow], gettext: Callable[[str], str]) -> list[DisruptionBlock]:
    by: dict[str, dict[str, MetricRow]] = {}
    for row in summary:
        parts = split_metric(row.metric)
        if parts:
            by.setdefault(parts[0], {})[parts[1]] = row
    order = [d for d in ORDER if d in by] + sorted(d for d in by if d not in ORDER)
    out = []
    for d in order:
        rows = by[d]
        ranked = [rows[m] for m in MEASURES if m in rows] + [r for m, r in sorted(rows.items()) if m not in MEASURES]
        out.append(DisruptionBlock(d, ranked, management_sentence(d, rows.get("unavailable_s"), rows.get("errors"), gettext)))
    return out


def representative(runset: RunSet, platform: str, disruption: str) -> tuple[str, float] | None:
    """(run_id, value) of the run whose unavailable_s is the median of the platform's runs."""
    s = runset.samples
    if not len(s):
        return None
    sel = s[(s["metric"] == f"{PREFIX}{disruption}.unavailable_s") & (s["platform"] == platform)]
    if not len(sel):
        return None
    per_run = sel.groupby("run_id", observed=True)["value"].median().sort_values()
    median = statistics.median_low(list(per_run.values))
    run_id = str(per_run[per_run == median].index[0])
    return run_id, float(median)


def pick_event(runset: RunSet, platforms: Sequence[str], disruptions: Sequence[str],
               warnings: list[str]) -> tuple[str, Timeline] | None:
    """The most telling disruption measured (first of ORDER), on the candidate first: its median run's timeline."""
    for d in [x for x in ORDER if x in disruptions] + [x for x in disruptions if x not in ORDER]:
        for platform in reversed(list(platforms)):
            rep = representative(runset, platform, d)
            if rep is None or rep[0] not in runset.dirs:
                continue
            for tl in read_timelines(runset.dirs[rep[0]], warnings):
                if tl.disruption == d:
                    return platform, tl
    return None


def timeline_chart(tl: Timeline, platform: str, color: str) -> str:
    """Requests over time (latency, failures on top) with the node's and pods' transitions."""
    with charts.rc_context(charts.STYLE):
        fig = charts.Figure(figsize=(7.5, 2.8))
        ax = fig.add_axes((0.08, 0.17, 0.9, 0.7))
        ok = [(t, ms) for t, ms, good in tl.probes if good]
        bad = [t for t, _ms, good in tl.probes if not good]
        if ok:
            ax.scatter([t for t, _ in ok], [ms for _, ms in ok], s=4, color=color, label="answered (latency)")
        top = max([ms for _, ms in ok] + [1.0]) * 1.15
        if bad:
            ax.scatter(bad, [top] * len(bad), s=10, marker="x", color="#c0392b", label="failed or missing")
        for t, kind, name, state in tl.transitions:
            if kind == "node":
                ax.axvline(t, color="#c0392b" if state != "Ready" else "#2f8f4e", linestyle="--", linewidth=1)
                back = state == "Ready"  # labelled on the left of its line: the last one sits at the right edge
                ax.annotate(f"node {state}", (t, top), xytext=(-2 if back else 2, -10), textcoords="offset points",
                            fontsize=7, ha="right" if back else "left")
            else:
                ax.plot([t], [0], marker="|", markersize=9, color="#2f8f4e" if state == "Ready" else "#7f7f7f")
        ax.axvline(0, color="#444", linewidth=1.2)
        ax.annotate(NAMES.get(tl.disruption, tl.disruption), (0, top), xytext=(2, 2), textcoords="offset points",
                    fontsize=7)
        ax.set_xlabel("seconds since the disruption (pod transitions: ticks on the axis)")
        ax.set_ylabel("ms")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{platform}: {NAMES.get(tl.disruption, tl.disruption)} of {tl.node}")
        ax.legend(loc="center right", fontsize=7, frameon=False)
        return charts._data_uri(fig)


def section(summary: Sequence[MetricRow], runset: RunSet, platforms: Sequence[str], colors: dict[str, str],
            with_charts: bool = True, lang: str = "en") -> ResilienceSection | None:
    """None when the runs hold no resilience metric."""
    gettext = translations(lang).gettext
    found = blocks(summary, gettext)
    if not found:
        return None
    out = ResilienceSection(blocks=found)
    event = pick_event(runset, platforms, [b.disruption for b in found], out.notes)
    if event is not None:
        platform, tl = event
        failed = sum(1 for *_x, good in tl.probes if not good and _x[0] >= 0)
        out.chart_caption = gettext("%(name)s of %(node)s on %(p)s (the run with the median unavailability): "
                                    "%(failed)d failed request(s), %(n)d node/pod transition(s).") % {
            "name": NAMES.get(tl.disruption, tl.disruption).capitalize(), "node": tl.node, "p": platform,
            "failed": failed, "n": len(tl.transitions)}
        if with_charts:
            out.chart = timeline_chart(tl, platform, colors.get(platform, "#1f5fa8"))
    return out
