"""The Conditions section: run conditions side by side, contended runs flagged, verdicts with and without them. Pure.

Conditions are ordinary samples of suite `context` (suites/context): they are compared with the
same run-level statistics as the metrics, but kept out of the executive summary's verdicts. A run
is *contended* when, in any window on any node, a condition crosses a threshold below; a verdict
that rests on contended runs says so in its sentence, and `--exclude-contended` recomputes the
verdicts without those runs (both are shown).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from reports.i18n import ENGLISH, N_, Language
from reports.model import MetricRow

SUITE = "context"

# provision/audit/kvm.py DEFAULT_OVERCOMMIT["other"]: the audit's vCPU:pCPU limit for hosts without
# masters (1.5:1 with masters is checked by the audit itself). tests/test_conditions_report.py keeps them equal.
AUDIT_VCPU_LIMIT = 4.0


@dataclass(frozen=True)
class Threshold:
    metric: str
    limit: float
    what: str  # msgid; "%(v)s" is the worst value, formatted by `fmt`
    fmt: str
    why: str  # msgid, shown after the limit


# `what` and `why` are msgids (N_), put into the report's language where shown.
THRESHOLDS: tuple[Threshold, ...] = (
    Threshold("context.guest.cpu.steal", 0.05, N_("CPU steal %(v)s of a vCPU"), "pct",
              N_("Linux counts as steal the time a runnable vCPU was not run by the hypervisor; above this level every "
                 "CPU-bound timing is inflated by roughly that much")),
    Threshold("context.hv.cpu.wait", 0.05, N_("vCPUs waited %(v)s of the time for a physical CPU"), "pct",
              N_("KVM vcpu.N.delay / vSphere cpu.ready per vCPU; VMware's guidance treats ready above this level as "
                 "contention worth investigating")),
    Threshold("context.hv.cpu.costop", 0.03, N_("co-stop %(v)s per vCPU"), "pct",
              N_("vSphere co-stop this high means SMP VMs are held back to keep their vCPUs in step")),
    Threshold("context.guest.memory.swap", 0.0, N_("the guest swapped (%(v)s pages/s)"), "num",
              N_("any swap activity during a benchmark turns memory accesses into disk I/O")),
    Threshold("context.hv.memory.swap", 0.0, N_("the hypervisor swapped guest memory (%(v)s KiB/s)"), "num",
              N_("host-level swapping stalls the guest without the guest knowing")),
    Threshold("context.host.vcpu_ratio", AUDIT_VCPU_LIMIT, N_("host vCPU:pCPU %(v)s"), "ratio",
              N_("the platform audit's limit, above which vCPUs queue for physical CPUs")),
)

LABELS = {
    "context.guest.cpu.steal": N_("CPU steal (guest)"),
    "context.guest.cpu.iowait": N_("CPU iowait (guest)"),
    "context.guest.load_per_cpu": N_("Load per CPU (guest)"),
    "context.guest.memory.available": N_("Memory available (guest)"),
    "context.guest.memory.major_faults": N_("Major page faults (guest)"),
    "context.guest.memory.swap": N_("Swap activity (guest)"),
    "context.guest.disk.latency": N_("Disk latency (guest)"),
    "context.guest.pod.cpu_throttled": N_("CPU throttling of benchmark pods"),
    "context.hv.cpu.wait": N_("vCPU wait for a physical CPU (KVM delay / vSphere ready)"),
    "context.hv.cpu.costop": N_("vCPU co-stop (vSphere)"),
    "context.hv.memory.swap": N_("Hypervisor swap activity"),
    "context.hv.memory.swapped": N_("Guest memory swapped by the host (vSphere)"),
    "context.hv.memory.ballooned": N_("Guest memory reclaimed by the balloon"),
    "context.hv.disk.latency": N_("Disk latency seen by the hypervisor"),
    "context.host.cpu.busy": N_("Host CPU busy"),
    "context.host.memory.available": N_("Host memory available"),
    "context.host.vcpu_ratio": N_("Host vCPU:pCPU"),
    "context.host.other_vms": N_("Other running VMs on the host"),
    "context.host.other_vcpus": N_("vCPUs of other VMs on the host"),
}
CPU_WAIT = ("context.hv.cpu.wait", "context.guest.cpu.steal")
# The conditions shown per benchmark window: CPU wait/steal, host load, memory pressure.
WINDOW_METRICS = ("context.hv.cpu.wait", "context.guest.cpu.steal", "context.host.cpu.busy",
                  "context.guest.memory.available", "context.host.memory.available", "context.hv.memory.swap",
                  "context.guest.memory.swap")


@dataclass
class ContendedRun:
    run_id: str
    platform: str
    reasons: list[str]  # in English: summary.json and the nightly summary quote them


@dataclass(frozen=True)
class ThresholdLine:
    """One threshold as the report shows it, in its language."""

    metric: str
    limit: str
    why: str


@dataclass
class VerdictChange:
    metric: str
    verdict_all: str
    verdict_clean: str
    ratio_all: float | None
    ratio_clean: float | None
    runs_all: str  # "base / cand"
    runs_clean: str


@dataclass
class WindowRow:
    window: str  # e.g. builds.test_build_time
    metric: str
    medians: dict[str, float | None]  # platform -> median over runs of the run's mean in this window


@dataclass
class ConditionsSection:
    rows: list[MetricRow]  # one per condition metric, the same statistics as the executive summary
    labels: dict[str, str]
    runs: dict[str, int]  # platform -> runs that recorded conditions
    contended: list[ContendedRun]
    thresholds: list[ThresholdLine]
    excluded: bool  # the executive summary was computed without the contended runs
    changes: list[VerdictChange] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # run id -> its contended run's reasons, in the report's language
    windows: list[WindowRow] = field(default_factory=list)


def split(valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(benchmark samples, condition samples)."""
    if valid.empty or "suite" not in valid:
        return valid, valid.iloc[0:0]
    is_ctx = (valid["suite"] == SUITE).to_numpy()
    return valid[~is_ctx], valid[is_ctx]


def _fmt(v: float, how: str) -> str:
    """The recorded (English, plain-text) form of a value: summary.json and the nightly summary."""
    return f"{v * 100:.1f} %" if how == "pct" else f"{v:.3g}:1" if how == "ratio" else f"{v:.3g}"


def _shown(v: float, how: str, tr: Language, limit: bool = False) -> str:
    """A value in the report's language; a limit without needless decimals ("5 %", not "5.0 %")."""
    if how == "pct":
        return tr.level(v) if limit else tr.pct(v)
    return tr.num(v, 3) + (":1" if how == "ratio" else "")


def _crossings(context: pd.DataFrame) -> dict[tuple[str, str], list[tuple[Threshold, float]]]:
    """(run id, platform) -> the thresholds its worst window crossed, with that worst value."""
    if context.empty:
        return {}
    worst = context.groupby(["run_id", "platform", "metric"], observed=True)["value"].max()
    by_run: dict[tuple[str, str], list[tuple[Threshold, float]]] = {}
    for t in THRESHOLDS:
        hits = worst[worst.index.get_level_values("metric") == t.metric]
        for (run_id, platform, _), v in hits.items():
            if v > t.limit:
                by_run.setdefault((str(run_id), str(platform)), []).append((t, float(v)))
    return dict(sorted(by_run.items(), key=lambda kv: (kv[0][1], kv[0][0])))


def contended_runs(context: pd.DataFrame) -> list[ContendedRun]:
    """Runs where a condition crossed its threshold in some window on some node (worst value quoted)."""
    return [ContendedRun(r, p, [t.what % {"v": _fmt(v, t.fmt)} for t, v in hits])
            for (r, p), hits in _crossings(context).items()]


def threshold_lines(tr: Language = ENGLISH) -> list[ThresholdLine]:
    return [ThresholdLine(t.metric, _shown(t.limit, t.fmt, tr, limit=True), tr.gettext(t.why)) for t in THRESHOLDS]


def _window(labels: str) -> str:
    try:
        doc = json.loads(labels)
    except ValueError:
        return "?"
    return str(doc.get("window", "?")) if isinstance(doc, dict) else "?"


def by_window(context: pd.DataFrame, pair: list[str]) -> list[WindowRow]:
    """Key conditions per benchmark window and platform: median over runs of each run's mean."""
    rows = context[context["metric"].isin(WINDOW_METRICS)]
    if rows.empty or "labels" not in rows:
        return []
    windows = rows["labels"].astype(str).map(_window)
    per_run = rows.assign(window=windows.to_numpy()).groupby(["window", "metric", "platform", "run_id"], observed=True)["value"].mean()
    med = per_run.groupby(level=[0, 1, 2], observed=True).median()
    out = []
    for window, metric in sorted({(w, m) for w, m, _ in med.index}, key=lambda wm: (wm[0], WINDOW_METRICS.index(wm[1]))):
        out.append(WindowRow(window, metric, {p: (float(med[(window, metric, p)]) if (window, metric, p) in med.index else None)
                                              for p in pair}))
    return out


def cpu_wait_by_platform(context: pd.DataFrame) -> dict[str, float]:
    """Median over runs of each run's mean CPU wait (hypervisor's count, else the guest's steal)."""
    out: dict[str, float] = {}
    for metric in CPU_WAIT:
        rows = context[context["metric"] == metric]
        if rows.empty:
            continue
        per_run = rows.groupby(["platform", "run_id"], observed=True)["value"].mean().groupby(level=0, observed=True).median()
        for p, v in per_run.items():
            if not math.isnan(v):
                out.setdefault(str(p), float(v))
    return out


def contention_clause(row: MetricRow, flagged: dict[str, int], runs: dict[str, int], wait: dict[str, float],
                      tr: Language = ENGLISH) -> str:
    """The words a manager reads next to a verdict that rests on contended runs ('' when none)."""
    _, ngettext = tr.gettext, tr.ngettext
    b, c = row.baseline, row.candidate
    if not flagged.get(b) and not flagged.get(c):
        return ""
    shown = [p for p in (c, b) if flagged.get(p)]
    parts = tr.join([ngettext("%(n)s of %(total)s %(p)s runs", "%(n)s of %(total)s %(p)s runs", flagged[p])
                     % {"n": flagged[p], "total": runs.get(p, 0), "p": p} for p in shown])
    n = sum(flagged[p] for p in shown)
    waited = ""
    if c in wait and b in wait:
        waited = " " + _("(vCPUs waited %(wc)s of the time on %(c)s against %(wb)s on %(b)s)") % {
            "wc": tr.pct(wait[c]), "c": c, "wb": tr.pct(wait[b]), "b": b}
    slower = None
    if row.ratio is not None and row.verdict in ("better", "worse"):
        slower = c if row.verdict == "worse" else b
    if slower and flagged.get(slower):
        return ngettext(
            "But %(runs)s ran under contention%(waited)s: the %(p)s hosts were busier, not necessarily slower; see "
            "Conditions (okdbench report --exclude-contended recomputes without those runs).",
            "But %(runs)s ran under contention%(waited)s: the %(p)s hosts were busier, not necessarily slower; see "
            "Conditions (okdbench report --exclude-contended recomputes without those runs).", n,
        ) % {"runs": parts, "waited": waited, "p": slower}
    return ngettext(
        "But %(runs)s ran under contention%(waited)s; see Conditions "
        "(okdbench report --exclude-contended recomputes without those runs).",
        "But %(runs)s ran under contention%(waited)s; see Conditions "
        "(okdbench report --exclude-contended recomputes without those runs).", n,
    ) % {"runs": parts, "waited": waited}


def build(
    context: pd.DataFrame,
    benchmarks: pd.DataFrame,
    summary: list[MetricRow],
    pair: list[str],
    exclude: bool,
    summarize: Callable[[pd.DataFrame], list[MetricRow]],
    tr: Language = ENGLISH,
) -> tuple[ConditionsSection | None, list[MetricRow]]:
    """(the section, the summary rows the report shows). `summarize(samples)` is the executive
    summary's own computation, so conditions get the same run-level statistics as the metrics."""
    if context.empty:
        return None, summary
    base, cand = pair
    rows = summarize(context)
    contended = [r for r in contended_runs(context) if r.platform in pair]
    flagged_ids = {r.run_id for r in contended}
    runs = {p: int(context.loc[context["platform"] == p, "run_id"].nunique()) for p in pair}
    reasons = {r: tr.join([tr.gettext(t.what) % {"v": _shown(v, t.fmt, tr)} for t, v in hits])
               for (r, p), hits in _crossings(context).items() if p in pair}
    windows = by_window(context, pair)
    named = {r.metric for r in rows} | {w.metric for w in windows}
    section = ConditionsSection(rows=rows, labels={m: tr.gettext(LABELS[m]) if m in LABELS else m for m in named},
                                runs=runs, contended=contended, thresholds=threshold_lines(tr), excluded=False,
                                reasons=reasons, windows=windows)
    if not flagged_ids:
        return section, summary
    clean = summarize(benchmarks[~benchmarks["run_id"].isin(flagged_ids)])
    clean_by_metric = {r.metric: r for r in clean}
    for r in summary:
        k = clean_by_metric.get(r.metric)
        if k is None or (k.verdict, k.runs_base, k.runs_cand) != (r.verdict, r.runs_base, r.runs_cand):
            section.changes.append(VerdictChange(
                r.metric, r.verdict, k.verdict if k else "not enough samples", r.ratio, k.ratio if k else None,
                f"{r.runs_base} / {r.runs_cand}", f"{k.runs_base} / {k.runs_cand}" if k else "0 / 0"))
    wait = cpu_wait_by_platform(context)
    shown = clean if exclude else summary
    if exclude:
        section.excluded = True
        dropped = {p: sum(1 for r in contended if r.platform == p) for p in pair}
        section.sentences.append(
            tr.gettext("Verdicts exclude contended runs (%(runs)s); the Conditions section shows the verdicts with all runs.")
            % {"runs": tr.join([f"{n} {p}" for p, n in dropped.items() if n])})
    else:
        metric_runs = benchmarks.groupby(["metric", "platform"], observed=True)["run_id"].unique()
        for r in shown:
            flagged, total = {}, {}
            for p in pair:
                ids = set(map(str, metric_runs.get((r.metric, p), [])))
                flagged[p], total[p] = len(ids & flagged_ids), len(ids)
            clause = contention_clause(r, flagged, total, wait, tr)
            if clause:
                r.sentence = f"{r.sentence} {clause}"
    return section, shown
