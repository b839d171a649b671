"""From a RunSet to the typed content of a report. Pure: no files read or written here.

`build_report` is the one entry point: validity → per-run aggregation → comparisons (run
medians, Holm) → criteria matrix → trends → inventory and warnings → charts.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Iterable

import numpy as np
import pandas as pd

from plumbing.errors import UserError
from reports import aggregate, charts, stats, trends, validity
from reports.demo_note import demo_note
from reports.model import (
    MIN_RUNS,
    CostTable,
    CriterionCell,
    CriterionRow,
    InvalidSample,
    MetricRow,
    MetricSection,
    Options,
    Quantiles,
    Report,
    RunEntry,
    VERDICTS,
)
from results.schema import RunInfo
from results.store import RunSet

log = logging.getLogger("okdbench.report")

STAGE_PREFIX = "build.stage."
TIME_UNITS = validity.TIME_UNITS
MAX_INVALID_LISTED = 200
MAX_HEADLINES = 10


class _Phase:
    """Progress logging: phase name and elapsed seconds, so long reports are not silent."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self, name: str) -> None:
        log.info("report: %s (%.1f s)", name, time.perf_counter() - self.t0)


def choose_platforms(platforms: Iterable[str], baseline: str | None, candidate: str | None) -> tuple[str, str]:
    found = sorted(set(platforms))
    listing = ", ".join(found) if found else "none"
    for flag, value in (("--baseline", baseline), ("--candidate", candidate)):
        if value is not None and value not in found:
            raise UserError(f"{flag} {value!r}: no runs with that platform; platforms found: {listing}")
    if baseline and candidate:
        if baseline == candidate:
            raise UserError(f"--baseline and --candidate are both {baseline!r}; pick two different platforms ({listing})")
        return baseline, candidate
    if len(found) == 2:
        if baseline:
            return baseline, next(p for p in found if p != baseline)
        if candidate:
            return next(p for p in found if p != candidate), candidate
        if "vsphere" in found:
            return "vsphere", next(p for p in found if p != "vsphere")
    raise UserError(
        f"cannot tell baseline from candidate; platforms found: {listing}; pass --baseline X --candidate Y"
    )


def build_report(
    runset: RunSet,
    baseline: str | None = None,
    candidate: str | None = None,
    opts: Options = Options(),
    acks: list[trends.Ack] | None = None,
    costs: CostTable | None = None,
    title: str | None = None,
    with_charts: bool = True,
) -> Report:
    phase = _Phase()
    if not runset.runs:
        raise UserError("no run folders could be read; pass folders that contain run.json (results/<run_id>/)")
    run_platform = {r.run_id: r.platform for r in runset.runs}
    sample_platforms = set(runset.samples["platform"].dropna().astype(str).unique()) if len(runset.samples) else set()
    base, cand = choose_platforms(set(run_platform.values()) | sample_platforms, baseline, candidate)
    pair = [base, cand]
    colors = charts.color_for(pair)
    warnings: list[str] = []
    warnings += [f"skipped unreadable run folder {s}" for s in runset.skipped]
    warnings += list(runset.warnings)

    samples = runset.samples
    samples = aggregate.categorize(samples)
    if set(samples["platform"].cat.categories) - set(pair):
        samples = samples[samples["platform"].isin(pair)]
        samples = samples.assign(platform=samples["platform"].cat.remove_unused_categories())
    valid, invalid = validity.split_invalid(samples)
    phase(f"{len(valid)} valid samples, {len(invalid)} invalid")

    attrs, attr_warnings = aggregate.metric_attributes(valid)
    warnings += attr_warnings
    rm = aggregate.run_medians(valid)
    nights = _run_nights(runset.runs, valid)
    rm["night"] = rm["run_id"].map(nights)
    phase("run medians")

    nightly = trends.nightly_series(rm.dropna(subset=["night"]))
    trend_list, breaks = trends.analyse_trends(nightly, attrs, acks or [], opts)
    phase("trends")

    # Charts need only the run medians and trends: render them in worker processes while this
    # process does the comparisons (the two together are most of a large report's time).
    metric_order = _metric_order(attrs)
    pending = (
        charts.start_many(_chart_jobs(metric_order, attrs, valid, rm, nightly, breaks, colors, pair))
        if with_charts
        else None
    )
    try:
        quant = aggregate.sample_quantiles(valid)
        summary = _summary(rm, valid, quant, attrs, base, cand, opts)
        phase("comparisons")
        criteria = _criteria(runset.criteria, runset.runs, pair)
        sections = _sections(summary, quant, attrs, pair)
        stage_table, stage_chart = _stages(rm, attrs, pair, with_charts)
        if pending is not None:
            for s, uri in zip(sections, pending.get()):
                s.chart = uri
            phase("charts")
    finally:
        if pending is not None:
            pending.close()
    by_metric: dict[str, list] = {}
    for t in trend_list:
        by_metric.setdefault(t.metric, []).append(t)
    for s in sections:
        s.trends = by_metric.get(s.metric, [])

    runs = _inventory(runset.runs, valid, pair, nights)
    warnings += _run_warnings(runset.runs, pair)
    invalid_rows = [
        InvalidSample(str(r.run_id), str(r.platform), str(r.metric), f"{r.value:g}" if isinstance(r.value, float) else str(r.value), str(r.reason))
        for r in invalid.head(MAX_INVALID_LISTED).itertuples(index=False)
    ]
    counts = Counter(r.verdict for r in summary)
    report = Report(
        title=title or f"OKD on {cand} compared with {base}",
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        baseline=base,
        candidate=cand,
        platforms=pair,
        options=opts,
        summary=summary,
        headlines=_headlines(summary),
        criteria=criteria,
        sections=sections,
        stage_chart=stage_chart,
        stage_table=stage_table,
        trends=trend_list,
        runs=runs,
        invalid=invalid_rows,
        invalid_total=len(invalid),
        warnings=warnings,
        costs=costs,
        verdict_counts={v: counts.get(v, 0) for v in VERDICTS},
        demo_note=demo_note(summary, base, cand, any(is_emulated(r) for r in runset.runs if r.platform in pair)),
    )
    phase("report content ready")
    return report


# ---------------------------------------------------------------- comparisons


def _summary(
    rm: pd.DataFrame, valid: pd.DataFrame, quant: pd.DataFrame, attrs: pd.DataFrame, base: str, cand: str, opts: Options
) -> list[MetricRow]:
    rng = np.random.default_rng(opts.seed)
    groups = {k: g for k, g in rm.groupby(["metric", "platform"], sort=False)}
    qidx = quant.set_index(["platform", "metric"]) if len(quant) else None
    rows: list[MetricRow] = []
    comparisons = []
    for metric in _metric_order(attrs):
        gb = groups.get((metric, base))
        gc = groups.get((metric, cand))
        xb = gb["median"].to_numpy() if gb is not None else np.array([])
        xc = gc["median"].to_numpy() if gc is not None else np.array([])
        comparisons.append((metric, gb, gc, stats.compare_runs(xb, xc, opts, rng)))
    holm = stats.holm(
        [c.p_value if c.n_base >= MIN_RUNS and c.n_cand >= MIN_RUNS else None for *_, c in comparisons]
    )
    for (metric, gb, gc, c), p_holm in zip(comparisons, holm):
        better = str(attrs.at[metric, "better"])
        unit = str(attrs.at[metric, "unit"])
        verdict = stats.verdict(c, p_holm, better, opts)

        def p95(platform: str) -> float | None:
            if qidx is None or (platform, metric) not in qidx.index:
                return None
            return float(qidx.loc[(platform, metric), "p95"])

        row = MetricRow(
            metric=metric,
            suite=str(attrs.at[metric, "suite"]),
            unit=unit,
            better=better,
            baseline=base,
            candidate=cand,
            runs_base=c.n_base,
            runs_cand=c.n_cand,
            samples_base=int(gb["n"].sum()) if gb is not None else 0,
            samples_cand=int(gc["n"].sum()) if gc is not None else 0,
            median_base=float(gb["median"].median()) if gb is not None else None,
            median_cand=float(gc["median"].median()) if gc is not None else None,
            p95_base=p95(base),
            p95_cand=p95(cand),
            cv_base=c.cv_base,
            cv_cand=c.cv_cand,
            ratio=c.ratio,
            ci_low=c.ci_low,
            ci_high=c.ci_high,
            p_value=c.p_value,
            p_holm=p_holm,
            effect_size=c.effect_size,
            test=c.test,
            verdict=verdict,
            runs_needed=c.runs_needed if verdict in ("no significant difference", "variance too high", "not enough samples") else None,
            sentence="",
        )
        row.sentence = sentence(row, opts)
        rows.append(row)
    return rows


def _pct(r: float | None, signed: bool = True) -> str:
    if r is None or not math.isfinite(r):
        return "n/a"
    v = (r - 1.0) * 100.0
    return f"{v:+.1f} %" if signed else f"{abs(v):.1f} %"


def sentence(row: MetricRow, opts: Options) -> str:
    """One plain-language sentence a manager can quote."""
    b, c = row.baseline, row.candidate
    per_run = _samples_per_run(row)
    runs = (
        f"{row.runs_base} runs per platform"
        if row.runs_base == row.runs_cand
        else f"{row.runs_cand} runs on {c}, {row.runs_base} on {b}"
    )
    target = f"{opts.detectable_difference * 100:g} %"
    power = f"{opts.power * 100:g} %"
    if row.verdict == "not enough samples":
        short = [(p, n) for p, n in ((b, row.runs_base), (c, row.runs_cand)) if n < MIN_RUNS]
        need = "; ".join(f"{p} has {n} run{'s' if n != 1 else ''}, needs {MIN_RUNS - n} more" for p, n in short)
        text = f"{row.metric}: not enough runs to judge ({need}; at least {MIN_RUNS} runs per platform are needed, however many samples each run holds)."
        if row.runs_needed:
            text += f" To detect a {target} difference at {power} power, plan about {row.runs_needed} runs per platform."
        return text
    change = row.ratio
    if row.verdict in ("better", "worse") and change is not None:
        is_time = row.unit in TIME_UNITS
        up = change > 1
        word = ("longer" if up else "shorter") if is_time else ("higher" if up else "lower")
        verb = "takes" if is_time else "is"
        lo, hi = row.ci_low, row.ci_high
        if lo is not None and hi is not None and (lo - 1) * (hi - 1) > 0:
            ci = f"95 % CI {abs(lo - 1) * 100:.1f}–{abs(hi - 1) * 100:.1f} %" if up else f"95 % CI {abs(hi - 1) * 100:.1f}–{abs(lo - 1) * 100:.1f} %"
        else:
            ci = f"95 % CI {_pct(lo)} to {_pct(hi)}"
        return (
            f"{row.metric} on {c} {verb} {_pct(change, signed=False)} {word} than on {b} ({ci}): {row.verdict}; "
            f"{runs}, {per_run} samples per run."
        )
    if row.verdict == "variance too high":
        cvs = ", ".join(f"{p} {v * 100:.0f} %" for p, v in ((b, row.cv_base), (c, row.cv_cand)) if v is not None)
        text = (
            f"{row.metric}: runs vary too much to judge (run-to-run CV {cvs}; limit {opts.cv_limit * 100:g} %); "
            f"the runs show {c} at {_pct(change)} against {b}."
        )
        if row.runs_needed:
            text += f" Reduce the noise, or plan about {row.runs_needed} runs per platform to detect a {target} difference at {power} power."
        return text
    text = (
        f"{row.metric}: no significant difference between {c} and {b} ({_pct(change)}, 95 % CI {_pct(row.ci_low)} to {_pct(row.ci_high)}); {runs}."
    )
    if row.runs_needed:
        have = max(row.runs_base, row.runs_cand)
        if row.runs_needed > have:
            text += f" To detect a {target} difference at {power} power, about {row.runs_needed} runs per platform are needed."
        else:
            text += f" With these runs a {target} difference would most likely have been seen."
    return text


def _samples_per_run(row: MetricRow) -> str:
    runs = row.runs_base + row.runs_cand
    if runs == 0:
        return "0"
    return f"~{round((row.samples_base + row.samples_cand) / runs):d}"


def _headlines(rows: list[MetricRow]) -> list[str]:
    # Biggest change first; a ratio of 0 (e.g. findings 2 -> 0) is the biggest there is.
    decided = sorted(
        (r for r in rows if r.verdict in ("better", "worse") and r.ratio is not None),
        key=lambda r: -abs(math.log(r.ratio)) if r.ratio > 0 else -math.inf,
    )
    out = [r.sentence for r in decided[:MAX_HEADLINES]]
    if len(decided) > MAX_HEADLINES:
        out.append(f"… and {len(decided) - MAX_HEADLINES} more significant differences in the table below.")
    return out


# ---------------------------------------------------------------- criteria


def _criteria(criteria: pd.DataFrame, runs: list[RunInfo], pair: list[str]) -> list[CriterionRow]:
    if criteria.empty:
        return []
    # "latest" = the run that started last; rank once so idxmax works on plain integers
    ranked = sorted(range(len(runs)), key=lambda i: (runs[i].started or "", i))
    order = {runs[i].run_id: rank for rank, i in enumerate(ranked)}
    df = criteria[criteria["platform"].isin(pair)].copy()
    if df.empty:
        return []
    df["order"] = df["run_id"].astype(str).map(lambda r: order.get(r, -1)).astype("int64")
    rows = []
    for crit, g in df.groupby("criterion", sort=True, observed=True):
        cells = {}
        for p in pair:
            gp = g[g["platform"] == p]
            if gp.empty:
                cells[p] = CriterionCell(status="", detail="", passed=0, checked=0, runs=0)
                continue
            latest = gp.loc[gp["order"].idxmax()] if len(gp) > 1 else gp.iloc[0]
            statuses = gp["status"].astype(str)
            checked = int(statuses.isin(["passed", "failed", "error"]).sum())
            cells[p] = CriterionCell(
                status=str(latest["status"]),
                detail=str(latest["detail"] if pd.notna(latest["detail"]) else ""),
                passed=int((statuses == "passed").sum()),
                checked=checked,
                runs=int(gp["run_id"].nunique()),
            )
        a, b = cells[pair[0]], cells[pair[1]]
        rows.append(CriterionRow(str(crit), cells, stats.fisher_pass_rates(a.passed, a.checked, b.passed, b.checked)))
    return rows


# ---------------------------------------------------------------- per-metric sections


def _sections(summary: list[MetricRow], quant: pd.DataFrame, attrs: pd.DataFrame, pair: list[str]) -> list[MetricSection]:
    qcols = [c for c in quant.columns if c.startswith("p")] if len(quant) else []
    qidx = quant.set_index(["platform", "metric"]) if len(quant) else None
    sections = []
    for row in summary:
        qs = []
        for p in pair:
            if qidx is not None and (p, row.metric) in qidx.index:
                rec = qidx.loc[(p, row.metric)]
                qs.append(Quantiles(p, int(rec["n"]), {c: float(rec[c]) for c in qcols if c != "platform"}))
        sections.append(MetricSection(row.metric, row.unit, row.better, row, None, qs))
    return sections


def _metric_order(attrs: pd.DataFrame) -> list[str]:
    return sorted(attrs.index, key=lambda m: (str(attrs.at[m, "suite"]), m))


def _chart_jobs(metrics, attrs, valid, rm, nightly, breaks, colors, pair) -> list[tuple[str, tuple]]:
    """One combined chart per metric (distribution + nightly trend), in `metrics` order."""
    sample_idx = valid.groupby(["metric", "platform"], observed=True, sort=False).indices
    values = valid["value"].to_numpy(dtype=float)
    rm_groups = {k: g["median"].to_numpy() for k, g in rm.groupby(["metric", "platform"], sort=False)}
    nightly_groups = {k: g for k, g in nightly.groupby(["metric", "platform"], sort=False)} if len(nightly) else {}
    jobs: list[tuple[str, tuple]] = []
    for metric in metrics:
        series = []
        for p in pair:
            idx = sample_idx.get((metric, p))
            series.append((p, values[idx] if idx is not None else np.array([]), rm_groups.get((metric, p), np.array([]))))
        tseries = []
        for p in pair:
            g = nightly_groups.get((metric, p))
            if g is not None and len(g) >= 2:
                tseries.append((p, list(g["night"]), g["value"].to_numpy(dtype=float), breaks.get((metric, p), [])))
        jobs.append(("metric", (metric, str(attrs.at[metric, "unit"]), series, tseries, colors)))
    return jobs


def _stages(rm: pd.DataFrame, attrs: pd.DataFrame, pair: list[str], with_charts: bool):
    stage_metrics = [m for m in attrs.index if m.startswith(STAGE_PREFIX)]
    if not stage_metrics:
        return [], None
    # Stages in the order they were first recorded: the build's own order.
    first = rm[rm["metric"].isin(stage_metrics)]
    order = list(dict.fromkeys(first["metric"]))
    med = first.groupby(["platform", "metric"])["median"].median()
    units = {str(attrs.at[m, "unit"]) for m in order}
    unit = units.pop() if len(units) == 1 else ""
    table = []
    grid = np.full((len(pair), len(order)), np.nan)
    for j, m in enumerate(order):
        entry: dict[str, object] = {"stage": m[len(STAGE_PREFIX):], "unit": str(attrs.at[m, "unit"])}
        for i, p in enumerate(pair):
            v = med.get((p, m))
            entry[p] = None if v is None or pd.isna(v) else float(v)
            if entry[p] is not None:
                grid[i, j] = entry[p]
        table.append(entry)
    chart = charts.stage_chart([m[len(STAGE_PREFIX):] for m in order], pair, grid, unit) if with_charts else None
    return table, chart


# ---------------------------------------------------------------- inventory & warnings


def _run_nights(runs: list[RunInfo], valid: pd.DataFrame) -> dict[str, str]:
    nights: dict[str, str] = {}
    for r in runs:
        try:
            ts = datetime.fromisoformat(str(r.started))
        except ValueError:
            continue
        if ts.tzinfo is not None:
            ts = ts.astimezone(timezone.utc)
        nights[r.run_id] = ts.date().isoformat()
    missing = [r.run_id for r in runs if r.run_id not in nights]
    if missing and len(valid):
        first = valid[valid["run_id"].isin(missing)].groupby("run_id", observed=True)["timestamp"].min()
        for run_id, ts in first.items():
            if pd.notna(ts):
                nights[str(run_id)] = ts.date().isoformat()
    return nights


def _nodes_text(info: RunInfo) -> str:
    parts = []
    for n in info.nodes:
        size = "/".join(
            x for x in (
                f"{n.vcpu} vCPU" if n.vcpu else "",
                f"{n.memory_mib / 1024:g} GiB" if n.memory_mib else "",
                f"{n.disk_gib} GiB disk" if n.disk_gib else "",
            ) if x
        )
        parts.append(f"{n.count}× {n.role}" + (f" {size}" if size else ""))
    return ", ".join(parts)


def _hypervisor_text(info: RunInfo) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(info.hypervisor.items()) if v not in (None, "", [], {}))


def _inventory(runs: list[RunInfo], valid: pd.DataFrame, pair: list[str], nights: dict[str, str]) -> list[RunEntry]:
    counts = valid.groupby("run_id", observed=True).size() if len(valid) else pd.Series(dtype=int)
    out = []
    for r in sorted(runs, key=lambda r: (r.platform, r.started or "", r.run_id)):
        status = r.status if r.platform in pair else f"{r.status} (not in this comparison)"
        out.append(
            RunEntry(
                run_id=r.run_id,
                platform=r.platform,
                cluster=r.cluster,
                date=nights.get(r.run_id, ""),
                status=status,
                okd_version=r.okd_version or "",
                nodes=_nodes_text(r),
                hypervisor=_hypervisor_text(r),
                samples=int(counts.get(r.run_id, 0)),
                incomplete=r.status != "complete",
            )
        )
    return out


def is_emulated(info: RunInfo) -> bool:
    h = info.hypervisor or {}
    flags = [h.get("emulated"), info.extra.get("emulated")]
    if any(f is True or str(f).lower() in ("true", "yes", "1") for f in flags if f is not None):
        return True
    domain = str(h.get("domain_type") or h.get("virt_type") or info.extra.get("domain_type") or "").lower()
    return domain == "qemu"


def _run_warnings(runs: list[RunInfo], pair: list[str]) -> list[str]:
    warnings = []
    in_pair = [r for r in runs if r.platform in pair]
    not_done = [r for r in in_pair if r.status != "complete"]
    if not_done:
        kinds = Counter(r.status for r in not_done)
        text = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        warnings.append(f"{text} run(s) included: their recorded samples are used; they are marked in the inventory")
    sizes = {p: sorted({_nodes_text(r) for r in in_pair if r.platform == p and r.nodes}) for p in pair}
    if all(sizes[p] for p in pair) and sizes[pair[0]] != sizes[pair[1]]:
        warnings.append(
            "cluster sizes differ between platforms: "
            + "; ".join(f"{p}: {' | '.join(sizes[p])}" for p in pair)
            + " — differences may come from the sizing, not the hypervisor"
        )
    for p in pair:
        emulated = [r for r in in_pair if r.platform == p and is_emulated(r)]
        if emulated:
            warnings.append(
                f"{p}: {len(emulated)} run(s) ran on a software-emulated hypervisor (QEMU TCG, no KVM acceleration): "
                "their timings say nothing about production performance"
            )
    insecure = [r.run_id for r in in_pair if r.insecure]
    if insecure:
        warnings.append(f"{len(insecure)} run(s) were made with --insecure (TLS verification off)")
    run_msgs = Counter(w for r in in_pair for w in r.warnings)
    for msg, n in sorted(run_msgs.items()):
        warnings.append(f"{msg} ({n} run{'s' if n != 1 else ''})" if n > 1 else msg)
    return warnings
