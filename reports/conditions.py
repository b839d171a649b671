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

from reports.model import MetricRow

SUITE = "context"

# provision/audit/kvm.py DEFAULT_OVERCOMMIT["other"]: the audit's vCPU:pCPU limit for hosts without
# masters (1.5:1 with masters is checked by the audit itself). tests/test_conditions_report.py keeps them equal.
AUDIT_VCPU_LIMIT = 4.0


@dataclass(frozen=True)
class Threshold:
    metric: str
    limit: float
    what: str  # "{v}" is the worst value, formatted by `fmt`
    fmt: str
    why: str


THRESHOLDS: tuple[Threshold, ...] = (
    Threshold("context.guest.cpu.steal", 0.05, "CPU steal {v} of a vCPU", "pct",
              "Linux counts as steal the time a runnable vCPU was not run by the hypervisor; above 5 % every "
              "CPU-bound timing is inflated by roughly that much"),
    Threshold("context.hv.cpu.wait", 0.05, "vCPUs waited {v} of the time for a physical CPU", "pct",
              "KVM vcpu.N.delay / vSphere cpu.ready per vCPU: VMware's guidance treats ready above 5 % per vCPU "
              "as contention worth investigating"),
    Threshold("context.hv.cpu.costop", 0.03, "co-stop {v} per vCPU", "pct",
              "vSphere co-stop above 3 % means SMP VMs are held back to keep their vCPUs in step"),
    Threshold("context.guest.memory.swap", 0.0, "the guest swapped ({v} pages/s)", "num",
              "any swap activity during a benchmark turns memory accesses into disk I/O"),
    Threshold("context.hv.memory.swap", 0.0, "the hypervisor swapped guest memory ({v} KiB/s)", "num",
              "host-level swapping stalls the guest without the guest knowing"),
    Threshold("context.host.vcpu_ratio", AUDIT_VCPU_LIMIT, "host vCPU:pCPU {v}:1", "num",
              f"above the platform audit's {AUDIT_VCPU_LIMIT:g}:1 limit, vCPUs queue for physical CPUs"),
)

LABELS = {
    "context.guest.cpu.steal": "CPU steal (guest)",
    "context.guest.cpu.iowait": "CPU iowait (guest)",
    "context.guest.load_per_cpu": "Load per CPU (guest)",
    "context.guest.memory.available": "Memory available (guest)",
    "context.guest.memory.major_faults": "Major page faults (guest)",
    "context.guest.memory.swap": "Swap activity (guest)",
    "context.guest.disk.latency": "Disk latency (guest)",
    "context.guest.pod.cpu_throttled": "CPU throttling of benchmark pods",
    "context.hv.cpu.wait": "vCPU wait for a physical CPU (KVM delay / vSphere ready)",
    "context.hv.cpu.costop": "vCPU co-stop (vSphere)",
    "context.hv.memory.swap": "Hypervisor swap activity",
    "context.hv.memory.swapped": "Guest memory swapped by the host (vSphere)",
    "context.hv.memory.ballooned": "Guest memory reclaimed by the balloon",
    "context.hv.disk.latency": "Disk latency seen by the hypervisor",
    "context.host.cpu.busy": "Host CPU busy",
    "context.host.memory.available": "Host memory available",
    "context.host.vcpu_ratio": "Host vCPU:pCPU",
    "context.host.other_vms": "Other running VMs on the host",
    "context.host.other_vcpus": "vCPUs of other VMs on the host",
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
    reasons: list[str]


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
    thresholds: list[Threshold]
    excluded: bool  # the executive summary was computed without the contended runs
    changes: list[VerdictChange] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)
    windows: list[WindowRow] = field(default_factory=list)


def split(valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(benchmark samples, condition samples)."""
    if valid.empty or "suite" not in valid:
        return valid, valid.iloc[0:0]
    is_ctx = (valid["suite"] == SUITE).to_numpy()
    return valid[~is_ctx], valid[is_ctx]


def _fmt(v: float, how: str) -> str:
    return f"{v * 100:.1f} %" if how == "pct" else f"{v:.3g}"


def contended_runs(context: pd.DataFrame) -> list[ContendedRun]:
    """Runs where a condition crossed its threshold in some window on some node (worst value quoted)."""
    if context.empty:
        return []
    worst = context.groupby(["run_id", "platform", "metric"], observed=True)["value"].max()
    by_run: dict[tuple[str, str], list[str]] = {}
    for t in THRESHOLDS:
        hits = worst[worst.index.get_level_values("metric") == t.metric]
        for (run_id, platform, _), v in hits.items():
            if v > t.limit:
                by_run.setdefault((str(run_id), str(platform)), []).append(t.what.format(v=_fmt(float(v), t.fmt)))
    return [ContendedRun(r, p, reasons) for (r, p), reasons in sorted(by_run.items(), key=lambda kv: (kv[0][1], kv[0][0]))]


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


def contention_clause(row: MetricRow, flagged: dict[str, int], runs: dict[str, int], wait: dict[str, float]) -> str:
    """The words a manager reads next to a verdict that rests on contended runs ('' when none)."""
    b, c = row.baseline, row.candidate
    if not flagged.get(b) and not flagged.get(c):
        return ""
    parts = [f"{flagged[p]} of {runs.get(p, 0)} {p} runs" for p in (c, b) if flagged.get(p)]
    text = f"But {' and '.join(parts)} ran under contention"
    if c in wait and b in wait:
        text += f" (vCPUs waited {wait[c] * 100:.1f} % of the time on {c} against {wait[b] * 100:.1f} % on {b})"
    slower = None
    if row.ratio is not None and row.verdict in ("better", "worse"):
        slower = c if row.verdict == "worse" else b
    if slower and flagged.get(slower):
        text += f": the {slower} hosts were busier, not necessarily slower"
    return text + "; see Conditions (okdbench report --exclude-contended recomputes without those runs)."


def build(
    context: pd.DataFrame,
    benchmarks: pd.DataFrame,
    summary: list[MetricRow],
    pair: list[str],
    exclude: bool,
    summarize: Callable[[pd.DataFrame], list[MetricRow]],
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
    section = ConditionsSection(rows=rows, labels={r.metric: LABELS.get(r.metric, r.metric) for r in rows}, runs=runs,
                                contended=contended, thresholds=list(THRESHOLDS), excluded=False,
                                windows=by_window(context, pair))
    section.labels.update({w.metric: LABELS.get(w.metric, w.metric) for w in section.windows})
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
            f"Verdicts exclude contended runs ({', '.join(f'{n} {p}' for p, n in dropped.items() if n)}); "
            "the Conditions section shows the verdicts with all runs.")
    else:
        metric_runs = benchmarks.groupby(["metric", "platform"], observed=True)["run_id"].unique()
        for r in shown:
            flagged, total = {}, {}
            for p in pair:
                ids = set(map(str, metric_runs.get((r.metric, p), [])))
                flagged[p], total[p] = len(ids & flagged_ids), len(ids)
            clause = contention_clause(r, flagged, total, wait)
            if clause:
                r.sentence = f"{r.sentence} {clause}"
    return section, shown
