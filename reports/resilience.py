"""The report's Resilience section: per disruption, the run-level comparison of what it cost,
a sentence management reads, and the timeline of one representative event (pure + one chart).

The comparisons are the executive summary's rows for the `resilience.<disruption>.<measure>`
metrics (run medians, Welch/Mann-Whitney, Holm, bootstrap CIs: reports/stats.py): nothing is
recomputed here, only regrouped and put into words.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Sequence

from markupsafe import Markup

from reports import charts
from reports.i18n import ENGLISH, N_, Language, language
from reports.model import MetricRow
from results.store import RunSet
from results.timeline import Timeline, read_timelines

PREFIX = "resilience."
MEASURES = ("unavailable_s", "errors", "detect_s", "recover_s", "downtime_ms", "p99_ms", "migration_s", "node_flaps",
            "pod_flaps", "incluster_unavailable_s", "incluster_errors", "incluster_downtime_ms", "incluster_p99_ms", "restart_s")
INSIDE = "incluster_"  # the in-cluster prober's measures (through the Service, not the router)
# etcd's leadership is told per role in a sentence, not as a table row: a run's median over a
# worker's 0 and a master's 1 change would read 0.5 and mean nothing.
LEADER = ("leader_changes", "leader_elect_s", "leaderless_s")
ORDER = ("power-off", "reset", "reboot", "freeze", "migrate", "ha-restart")
NAMES = {"power-off": N_("power-off"), "reset": N_("hard reset"), "reboot": N_("graceful reboot"),
         "freeze": N_("freeze"), "migrate": N_("live migration"), "ha-restart": N_("host failure with HA restart")}
# suites/resilience.py defines them; the metric's own suffix is shown beside the name.
MEASURE_NAMES = {"unavailable_s": N_("unavailability"), "errors": N_("failed requests"), "detect_s": N_("detection"),
                 "recover_s": N_("recovery"), "downtime_ms": N_("longest gap between successful requests"),
                 "p99_ms": N_("p99 request latency"), "migration_s": N_("migration time"),
                 "node_flaps": N_("node Ready to NotReady transitions"),
                 "pod_flaps": N_("pod Ready to NotReady transitions"),
                 "incluster_unavailable_s": N_("unavailability inside the cluster (Service)"),
                 "incluster_errors": N_("failed requests inside the cluster (Service)"),
                 "incluster_downtime_ms": N_("longest gap inside the cluster (Service)"),
                 "incluster_p99_ms": N_("p99 request latency inside the cluster (Service)"),
                 "restart_s": N_("time until HA ran the VM again")}


@dataclass
class DisruptionBlock:
    disruption: str
    rows: list[MetricRow]  # the summary rows of resilience.<disruption>.*, in MEASURES order
    sentence: str
    name: str = ""  # the disruption in the report's language
    labels: dict[str, str] = field(default_factory=dict)  # metric -> its measure in the report's language
    etcd: str = ""  # what etcd's leader did, per platform (from the samples' roles)


@dataclass
class ResilienceSection:
    blocks: list[DisruptionBlock]
    chart: Markup | None = None  # inline SVG of the representative timeline
    chart_caption: str = ""
    notes: list[str] = field(default_factory=list)
    inside: bool = False  # some rows come from the in-cluster prober


def split_metric(metric: str) -> tuple[str, str] | None:
    """'resilience.power-off.unavailable_s' -> ('power-off', 'unavailable_s')."""
    if not metric.startswith(PREFIX):
        return None
    rest = metric[len(PREFIX):]
    disruption, _, measure = rest.rpartition(".")
    return (disruption, measure) if disruption and measure else None


def _seconds(v: float | None, tr: Language) -> str:
    if v is None:
        return tr.gettext("n/a")
    return f"{tr.num(round(v)) if v >= 10 else tr.num(round(v, 1), 2)} s"


def disruption_name(disruption: str, tr: Language = ENGLISH) -> str:
    """The disruption in the report's language (an unknown one as recorded)."""
    return tr.gettext(NAMES[disruption]) if disruption in NAMES else disruption


def management_sentence(disruption: str, unavailable: MetricRow | None, errors: MetricRow | None,
                        tr: Language = ENGLISH) -> str:
    """'a worker power-off cost 41 s of partial unavailability on kvm and 38 s on vsphere: no significant difference.'"""
    _ = tr.gettext
    name = disruption_name(disruption, tr)
    row = unavailable or errors
    if row is None:
        text = _("A worker %(name)s was not measured.") % {"name": name}
        return text[:1].upper() + text[1:]
    if unavailable is not None:
        text = _("A worker %(name)s cost %(cand)s of partial unavailability on %(c)s and %(base)s on %(b)s: %(verdict)s.") % {
            "name": name, "cand": _seconds(unavailable.median_cand, tr), "c": unavailable.candidate,
            "base": _seconds(unavailable.median_base, tr), "b": unavailable.baseline, "verdict": _(unavailable.verdict)}
    else:
        text = ""
    if errors is not None and disruption == "migrate":
        text += " " + _("Failed requests per migration (run median): %(cand)s on %(c)s, %(base)s on %(b)s.") % {
            "cand": _("n/a") if errors.median_cand is None else tr.num(errors.median_cand, 3), "c": errors.candidate,
            "base": _("n/a") if errors.median_base is None else tr.num(errors.median_base, 3), "b": errors.baseline}
    text = text.strip()
    return text[:1].upper() + text[1:]  # a language may start with the disruption's name


def blocks(summary: Sequence[MetricRow], tr: Language = ENGLISH) -> list[DisruptionBlock]:
    by: dict[str, dict[str, MetricRow]] = {}
    for row in summary:
        parts = split_metric(row.metric)
        if parts:
            by.setdefault(parts[0], {})[parts[1]] = row
    order = [d for d in ORDER if d in by] + sorted(d for d in by if d not in ORDER)
    out = []
    for d in order:
        rows = {m: r for m, r in by[d].items() if m not in LEADER}
        if not rows:
            continue
        ranked = [rows[m] for m in MEASURES if m in rows] + [r for m, r in sorted(rows.items()) if m not in MEASURES]
        labels = {r.metric: tr.gettext(MEASURE_NAMES[m]) if m in MEASURE_NAMES else m for m, r in rows.items()}
        out.append(DisruptionBlock(d, ranked, management_sentence(d, rows.get("unavailable_s"), rows.get("errors"), tr),
                                   disruption_name(d, tr), labels))
    return out


@dataclass
class LeaderFacts:
    events: int = 0  # disruptions whose etcd leadership was measured
    changes: int = 0  # leader changes over those events
    elect_s: list[float] = field(default_factory=list)
    scrape_s: list[float] = field(default_factory=list)


def leader_facts(samples, disruption: str, platform: str) -> dict[str, LeaderFacts]:
    """role -> what etcd's leader did in this platform's disruptions (every run pooled: these are counts of events)."""
    out: dict[str, LeaderFacts] = {}
    if not len(samples):
        return out
    names = {f"{PREFIX}{disruption}.leader_changes": "changes", f"{PREFIX}{disruption}.leader_elect_s": "elect"}
    sel = samples[samples["metric"].isin(list(names)) & (samples["platform"] == platform)]
    for metric, value, labels in zip(sel["metric"], sel["value"], sel["labels"]):
        try:
            lab = json.loads(labels) if isinstance(labels, str) else dict(labels or {})
        except (TypeError, ValueError):
            lab = {}
        facts = out.setdefault(str(lab.get("role") or "worker"), LeaderFacts())
        if names[metric] == "changes":
            facts.events += 1
            facts.changes += int(round(float(value)))
            if isinstance(lab.get("scrape_s"), (int, float)) and lab["scrape_s"] > 0:
                facts.scrape_s.append(float(lab["scrape_s"]))
        else:
            facts.elect_s.append(float(value))
    return out


def etcd_sentence(samples, disruption: str, platforms: Sequence[str], tr: Language = ENGLISH) -> str:
    """'kvm: etcd elected a new leader after 4.2 s when a master was disrupted (1 leader change in 3 events, ...)'"""
    _ = tr.gettext
    name = disruption_name(disruption, tr)
    out = []
    for p in platforms:
        facts = leader_facts(samples, disruption, p)
        master, worker = facts.get("master"), facts.get("worker")

        def counts(f: LeaderFacts) -> dict[str, str]:
            return {"p": p, "name": name,
                    "changes": tr.ngettext("%(n)s leader change", "%(n)s leader changes", f.changes) % {"n": tr.num(f.changes)},
                    "events": tr.ngettext("%(n)s event", "%(n)s events", f.events) % {"n": tr.num(f.events)}}

        if master is not None:
            if master.changes == 0:
                out.append(_("%(p)s: no etcd leader change when a master was disrupted (%(events)s).") % counts(master))
            elif master.elect_s:
                out.append(_("%(p)s: etcd elected a new leader after %(s)s when a master was disrupted (%(changes)s in "
                             "%(events)s; Prometheus scraped etcd every %(scrape)s, the resolution of that time).")
                           % {**counts(master), "s": _seconds(statistics.median(master.elect_s), tr),
                              "scrape": _seconds(statistics.median(master.scrape_s) if master.scrape_s else None, tr)})
            else:
                out.append(_("%(p)s: etcd changed leader when a master was disrupted (%(changes)s in %(events)s).")
                           % counts(master))
        if worker is not None and worker.changes:
            out.append(_("%(p)s: a worker %(name)s made etcd change leader (%(changes)s in %(events)s), although no "
                         "etcd member runs on a worker.") % counts(worker))
        elif worker is not None and master is None:
            out.append(_("%(p)s: no etcd leader change during a worker %(name)s (%(events)s).") % counts(worker))
    return " ".join(out)


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


def timeline_chart(tl: Timeline, platform: str, color: str, lang: str = "en") -> Markup:
    """Requests over time (latency dots, failures as crosses on top) with the node's and pods' transitions."""
    tr = language(lang)
    _ = tr.gettext
    ok = [(t, ms) for t, ms, good in tl.probes if good]
    bad = [t for t, _ms, good in tl.probes if not good]
    times = [t for t, _ms, _g in tl.probes] + [t for t, *_rest in tl.transitions] + [0.0]
    top_ms = max([ms for _t, ms in ok], default=1.0) * 1.15
    y0, height = 26.0, 150.0
    xs = charts._Scale(min(times), max(times), charts.LEFT, charts.WIDTH - charts.RIGHT)
    ys = charts._Scale(0.0, top_ms, y0 + height, y0)
    parts = [f'<line x1="{charts.LEFT}" x2="{charts.WIDTH - charts.RIGHT}" y1="{y0 + height:.1f}" '
             f'y2="{y0 + height:.1f}" stroke="#888"/>']
    for t in charts.nice_ticks(0.0, top_ms, 4):
        y = float(ys(t))
        parts.append(charts._text(charts.LEFT - 6, y + 4, tr.num(t), "end", 10))
    for t in charts.nice_ticks(xs.lo, xs.hi, 6):
        parts.append(charts._text(float(xs(t)), y0 + height + 13, tr.num(t), "middle", 10))
    parts.append(charts._text((charts.LEFT + charts.WIDTH) / 2, y0 + height + 28,
                              _("seconds since the disruption (pod transitions: ticks on the axis)"), "middle", 11))
    parts.append(charts._text(charts.LEFT, y0 - 8, _("request latency (ms)"), "start", 10, "#5b6570"))
    if ok:
        parts.append(charts._dots(xs([t for t, _ in ok]), ys([ms for _, ms in ok]), color, 3.0))
    for t in bad:
        x, y = float(xs(t)), y0 + 4
        parts.append(f'<path d="M{x - 3:.1f} {y - 3:.1f}l6 6M{x - 3:.1f} {y + 3:.1f}l6 -6" stroke="#c0392b" stroke-width="1.5"/>')
    for t, kind, _name, state in tl.transitions:
        x = float(xs(t))
        if kind == "node":
            c = "#2f8f4e" if state == "Ready" else "#c0392b"
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0:.1f}" y2="{y0 + height:.1f}" stroke="{c}" stroke-dasharray="4 3"/>')
            parts.append(charts._text(x + 2, y0 + 12, _("node %(state)s") % {"state": state}, "start", 9, c))
        else:
            c = "#2f8f4e" if state == "Ready" else "#7f7f7f"
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0 + height - 6:.1f}" y2="{y0 + height + 2:.1f}" stroke="{c}" stroke-width="2"/>')
    x0 = float(xs(0.0))
    parts.append(f'<line x1="{x0:.1f}" x2="{x0:.1f}" y1="{y0:.1f}" y2="{y0 + height:.1f}" stroke="#444" stroke-width="1.2"/>')
    name = disruption_name(tl.disruption, tr)
    parts.append(charts._text(x0 + 2, y0 - 8, name, "start", 10))
    title = _("%(p)s: %(name)s of %(node)s") % {"p": platform, "name": name, "node": tl.node}
    return charts._svg(parts, y0 + height + 36, title)


def section(summary: Sequence[MetricRow], runset: RunSet, platforms: Sequence[str], colors: dict[str, str],
            with_charts: bool = True, lang: str = "en") -> ResilienceSection | None:
    """None when the runs hold no resilience metric."""
    tr = language(lang)
    found = blocks(summary, tr)
    if not found:
        return None
    out = ResilienceSection(blocks=found, inside=any(split_metric(r.metric)[1].startswith(INSIDE)
                                                    for b in found for r in b.rows))
    for b in found:
        b.etcd = etcd_sentence(runset.samples, b.disruption, platforms, tr)
    event = pick_event(runset, platforms, [b.disruption for b in found], out.notes)
    if event is not None:
        platform, tl = event
        failed = sum(1 for *_x, good in tl.probes if not good and _x[0] >= 0)
        name = disruption_name(tl.disruption, tr)
        out.chart_caption = tr.gettext("%(name)s of %(node)s on %(p)s (the run with the median unavailability): "
                                       "%(failed)s, %(transitions)s.") % {
            "name": name[:1].upper() + name[1:], "node": tl.node, "p": platform,
            "failed": tr.ngettext("%(n)s failed request", "%(n)s failed requests", failed) % {"n": tr.num(failed)},
            "transitions": tr.ngettext("%(n)s node/pod transition", "%(n)s node/pod transitions", len(tl.transitions))
            % {"n": tr.num(len(tl.transitions))}}
        if with_charts:
            out.chart = timeline_chart(tl, platform, colors.get(platform, "#1f5fa8"), lang)
    return out
