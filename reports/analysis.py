"""From a RunSet to the typed content of a report. Pure: no files read or written here.

`build_report` is the one entry point: validity → per-run aggregation → comparisons (run
medians, Holm) → criteria matrix → trends → inventory and warnings → charts.
"""

from __future__ import annotations

import difflib
import logging
import math
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Iterable

import numpy as np
import pandas as pd

from plumbing.errors import UserError
from reports import aggregate, charts, conditions, decision, noise, resilience, stats, trends, validity
from reports.i18n import ENGLISH, Language, language
from reports.security import security_posture
from reports.demo_note import demo_note
from reports.model import (
    MIN_RUNS,
    RUNS_NEEDED_SHOWN,
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
    SkippedGroup,
    VERDICTS,
)
from results.schema import RunInfo
from results.store import RunSet

log = logging.getLogger("okdbench.report")

STAGE_PREFIX = "build.stage."
# Counts of audit findings describe the configuration, not its performance: a variant built
# without the findings is "better" by construction. They are listed with the audit, never judged.
AUDIT_PREFIX = "audit.findings."
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
    lang: str = "en",
) -> Report:
    phase = _Phase()
    tr = language(lang)
    _ = tr.gettext
    if not runset.runs:
        raise UserError("no run folders could be read; pass folders that contain run.json (results/<run_id>/)")
    run_platform = {r.run_id: r.platform for r in runset.runs}
    sample_platforms = set(runset.samples["platform"].dropna().astype(str).unique()) if len(runset.samples) else set()
    base, cand = choose_platforms(set(run_platform.values()) | sample_platforms, baseline, candidate)
    pair = [base, cand]
    colors = charts.color_for(pair)
    warnings: list[str] = []
    warnings += [_("skipped unreadable run folder %(folder)s") % {"folder": s} for s in runset.skipped]
    warnings += list(runset.warnings)

    samples = runset.samples
    samples = aggregate.categorize(samples)
    if set(samples["platform"].cat.categories) - set(pair):
        samples = samples[samples["platform"].isin(pair)]
        samples = samples.assign(platform=samples["platform"].cat.remove_unused_categories())
    valid, invalid = validity.split_invalid(samples)
    valid, context = conditions.split(valid)  # run conditions: their own section, not verdicts
    phase(f"{len(valid)} valid samples, {len(invalid)} invalid")

    audit_rows = _audit_counts(valid, pair)
    if audit_rows:
        valid = valid[~valid["metric"].isin([a["metric"] for a in audit_rows]).to_numpy()]
    attrs, attr_warnings = aggregate.metric_attributes(valid, tr)
    warnings += attr_warnings
    _check_primary(opts.primary, list(attrs.index))
    rm = aggregate.run_medians(valid)
    nights = _run_nights(runset.runs, valid)
    rm["night"] = rm["run_id"].map(nights)
    phase("run medians")

    nightly = trends.nightly_series(rm.dropna(subset=["night"]))
    trend_list, breaks = trends.analyse_trends(nightly, attrs, acks or [], opts, tr)
    phase("trends")

    metric_order = _metric_order(attrs)
    # One sort gives both the table's quantiles and the charts' boxes (1st/25th/75th/99th).
    quant = aggregate.sample_quantiles(valid, tuple(sorted(set(aggregate.QUANTILES) | set(BOX_QUANTILES))))
    summary = _summary(rm, valid, quant, attrs, base, cand, opts, tr)
    cond, summary = conditions.build(context, valid, summary, pair, opts.exclude_contended,
                                     lambda s: _rows(s, base, cand, opts, tr), tr)
    phase("comparisons")
    criteria = _criteria(runset.criteria, runset.runs, pair)
    checked, skipped = _split_skipped(criteria, pair, tr)
    sections = _sections(summary, quant, attrs, pair)
    stage_table, stage_chart = _stages(rm, attrs, pair, with_charts, tr)
    resilience_section = resilience.section(summary, runset, pair, colors, with_charts, tr.code)
    if with_charts:
        for s, chart in zip(sections, _charts(metric_order, attrs, quant, rm, nightly, breaks, colors, pair, tr)):
            s.chart = chart
        phase("charts")
    by_metric: dict[str, list] = {}
    for t in trend_list:
        by_metric.setdefault(t.metric, []).append(t)
    for s in sections:
        s.trends = by_metric.get(s.metric, [])

    runs = _inventory(runset.runs, valid, pair, nights, tr)
    warnings += _run_warnings(runset.runs, pair, tr)
    warnings += resilience_section.notes if resilience_section else []
    invalid_rows = [
        InvalidSample(str(r.run_id), str(r.platform), str(r.metric), f"{r.value:g}" if isinstance(r.value, float) else str(r.value), str(r.reason))
        for r in invalid.head(MAX_INVALID_LISTED).itertuples(index=False)
    ]
    counts = Counter(r.verdict for r in summary)
    report = Report(
        title=title or _("OKD on %(candidate)s compared with %(baseline)s") % {"candidate": cand, "baseline": base},
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        baseline=base,
        candidate=cand,
        platforms=pair,
        options=opts,
        summary=summary,
        headlines=_headlines(summary, tr),
        criteria=checked,
        skipped_criteria=skipped,
        decision=decision.decision_lines(pair, summary, criteria, costs, tr),
        noise=noise.noise_advice(summary, _emulated_counts(runset.runs, pair), opts, RUNS_NEEDED_SHOWN, tr),
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
        resilience=resilience_section,
        lang=tr.code,
        audit_findings=audit_rows,
        conditions=cond,
        security=security_posture(runset.runs, pair, tr),
        demo_note=demo_note(summary, base, cand, any(is_emulated(r) for r in runset.runs if r.platform in pair)),
    )
    phase("report content ready")
    return report


# ---------------------------------------------------------------- comparisons


def _summary(
    rm: pd.DataFrame, valid: pd.DataFrame, quant: pd.DataFrame, attrs: pd.DataFrame, base: str, cand: str, opts: Options,
    tr: Language = ENGLISH,
) -> list[MetricRow]:
    groups = {k: g for k, g in rm.groupby(["metric", "platform"], sort=False)}
    qidx = quant.set_index(["platform", "metric"]) if len(quant) else None
    rows: list[MetricRow] = []
    comparisons = []
    for metric in _metric_order(attrs):
        gb = groups.get((metric, base))
        gc = groups.get((metric, cand))
        xb = gb["median"].to_numpy() if gb is not None else np.array([])
        xc = gc["median"].to_numpy() if gc is not None else np.array([])
        comparisons.append((metric, gb, gc, stats.compare_runs(xb, xc, opts)))
    family = [c.p_value if c.n_base >= MIN_RUNS and c.n_cand >= MIN_RUNS else None for *_, c in comparisons]
    weights = holm_weights([m for m, *_ in comparisons], family, opts)
    holm = stats.holm(family, weights)
    levels = stats.holm_levels(family, opts.alpha, weights)
    for (metric, gb, gc, c), p_holm, level in zip(comparisons, holm, levels):
        if level is not None:
            # The interval at the level Holm tested this metric: it agrees with the verdict's test.
            c.ci_low, c.ci_high = stats.interval(gb["median"].to_numpy(), gc["median"].to_numpy(), level, opts)
            c.ci_level = level
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
            ci_level=c.ci_level,
            primary=metric in opts.primary,
            noisy=stats.noisy(c, opts),
            p_value=c.p_value,
            p_holm=p_holm,
            effect_size=c.effect_size,
            test=c.test,
            verdict=verdict,
            runs_needed=c.runs_needed if verdict in ("no significant difference", "variance too high", "not enough samples") else None,
            sentence="",
        )
        row.sentence = sentence(row, opts, tr)
        rows.append(row)
    return rows


def _check_primary(primary: tuple[str, ...], metrics: list[str]) -> None:
    for name in primary:
        if name not in metrics:
            near = difflib.get_close_matches(name, metrics, n=3) or sorted(metrics)[:3]
            raise UserError(f"primary metric {name}: no such metric in these runs; did you mean {' or '.join(near)}? "
                            "(okdbench report --primary, or primary: in the nightly config)")


def holm_weights(metrics: list[str], family: list[float | None], opts: Options) -> list[float]:
    """Holm weights: the primary metrics share opts.primary_share of alpha, the others the rest.

    Equal weights (plain Holm) when no primary metric, or nothing but primary metrics, is in the family.
    """
    tested = [m for m, p in zip(metrics, family) if p is not None]
    n_primary = sum(m in opts.primary for m in tested)
    if n_primary in (0, len(tested)):
        return [1.0] * len(metrics)
    share = opts.primary_share
    return [share / n_primary if m in opts.primary else (1 - share) / (len(tested) - n_primary) for m in metrics]


def _rows(samples: pd.DataFrame, base: str, cand: str, opts: Options, tr: Language) -> list[MetricRow]:
    """Executive-summary rows of any subset of samples (conditions, runs without contention)."""
    attrs, _ = aggregate.metric_attributes(samples)
    return _summary(aggregate.run_medians(samples), samples, aggregate.sample_quantiles(samples), attrs, base, cand,
                    opts, tr)


def sentence(row: MetricRow, opts: Options, tr: Language = ENGLISH) -> str:
    """One plain-language sentence a manager can quote, in the report's language."""
    _, ngettext = tr.gettext, tr.ngettext
    b, c = row.baseline, row.candidate
    if row.runs_base == row.runs_cand:
        runs = ngettext("%(n)s run per platform", "%(n)s runs per platform", row.runs_base) % {"n": row.runs_base}
    else:
        runs = _("%(nc)s runs on %(c)s, %(nb)s on %(b)s") % {"nc": row.runs_cand, "c": c, "nb": row.runs_base, "b": b}
    target = tr.pct(opts.detectable_difference, decimals=0)
    power = tr.pct(opts.power, decimals=0)
    level = tr.level(row.ci_level if row.ci_level is not None else 1 - opts.alpha)
    if row.verdict == "not enough samples":
        short = [(p, n) for p, n in ((b, row.runs_base), (c, row.runs_cand)) if n < MIN_RUNS]
        need = tr.sep(";").join(
            ngettext("%(p)s has %(n)s run, needs %(more)s more", "%(p)s has %(n)s runs, needs %(more)s more", n)
            % {"p": p, "n": n, "more": MIN_RUNS - n}
            for p, n in short
        )
        text = _(
            "%(metric)s: not enough runs to judge (%(need)s; at least %(min)s runs per platform are needed, "
            "however many samples each run holds)."
        ) % {"metric": row.metric, "need": need, "min": MIN_RUNS}
        if row.runs_needed:
            text += " " + _("To detect a %(target)s difference at %(power)s power, plan about %(n)s runs per platform.") % {
                "target": target, "power": power, "n": _capped(row.runs_needed, tr)}
        return text
    change = row.ratio
    if row.verdict in ("better", "worse") and change is not None:
        up = change > 1
        if row.unit in TIME_UNITS:
            template = _("%(metric)s on %(c)s takes %(pct)s longer than on %(b)s (%(ci)s): %(verdict)s; %(runs)s, %(per_run)s samples per run.") if up \
                else _("%(metric)s on %(c)s takes %(pct)s less time than on %(b)s (%(ci)s): %(verdict)s; %(runs)s, %(per_run)s samples per run.")
        else:
            template = _("%(metric)s on %(c)s is %(pct)s higher than on %(b)s (%(ci)s): %(verdict)s; %(runs)s, %(per_run)s samples per run.") if up \
                else _("%(metric)s on %(c)s is %(pct)s lower than on %(b)s (%(ci)s): %(verdict)s; %(runs)s, %(per_run)s samples per run.")
        lo, hi = row.ci_low, row.ci_high
        if lo is not None and hi is not None and (lo - 1) * (hi - 1) > 0:
            a, z = sorted((abs(lo - 1), abs(hi - 1)))
            ci = _("%(level)s CI %(lo)s to %(hi)s") % {"level": level, "lo": tr.pct(a), "hi": tr.pct(z)}
        else:
            ci = _("%(level)s CI %(lo)s to %(hi)s") % {"level": level, "lo": tr.ratio_pct(lo), "hi": tr.ratio_pct(hi)}
        text = template % {
            "metric": row.metric, "c": c, "b": b, "pct": tr.ratio_pct(change, signed=False), "ci": ci,
            "verdict": _(row.verdict), "runs": runs, "per_run": _samples_per_run(row),
        }
        if row.noisy:
            text += " " + _(
                "Its runs vary past the %(limit)s limit (run-to-run CV %(cvs)s): the test weighs that spread and "
                "the difference holds, but a single run there is hard to predict."
            ) % {"limit": tr.pct(opts.cv_limit, decimals=0), "cvs": _cvs(row, tr)}
        return text
    if row.verdict == "variance too high":
        text = _(
            "%(metric)s: runs vary too much to judge (run-to-run CV %(cvs)s; limit %(limit)s); "
            "the runs show %(c)s at %(change)s against %(b)s."
        ) % {"metric": row.metric, "cvs": _cvs(row, tr), "limit": tr.pct(opts.cv_limit, decimals=0), "c": c,
             "change": tr.ratio_pct(change), "b": b}
        if row.runs_needed:
            text += " " + _(
                "Reduce the noise, or plan about %(n)s runs per platform to detect a %(target)s difference at %(power)s power."
            ) % {"n": _capped(row.runs_needed, tr), "target": target, "power": power}
        return text
    text = _("%(metric)s: no significant difference between %(c)s and %(b)s (%(change)s, %(level)s CI %(lo)s to %(hi)s); %(runs)s.") % {
        "metric": row.metric, "c": c, "b": b, "change": tr.ratio_pct(change), "level": level,
        "lo": tr.ratio_pct(row.ci_low), "hi": tr.ratio_pct(row.ci_high), "runs": runs}
    if row.runs_needed:
        have = max(row.runs_base, row.runs_cand)
        if row.runs_needed > have:
            text += " " + _("To detect a %(target)s difference at %(power)s power, about %(n)s runs per platform are needed.") % {
                "target": target, "power": power, "n": _capped(row.runs_needed, tr)}
        else:
            text += " " + _("With these runs a %(target)s difference would most likely have been seen.") % {"target": target}
    return text


def _cvs(row: MetricRow, tr: Language) -> str:
    sides = ((row.baseline, row.cv_base), (row.candidate, row.cv_cand))
    return ", ".join(f"{p} {tr.pct(v, decimals=0)}" for p, v in sides if v is not None)


def _capped(n: int, tr: Language) -> str:
    return tr.num(n) if n <= RUNS_NEEDED_SHOWN else "> " + tr.num(RUNS_NEEDED_SHOWN)


def _samples_per_run(row: MetricRow) -> str:
    runs = row.runs_base + row.runs_cand
    if runs == 0:
        return "0"
    return f"~{round((row.samples_base + row.samples_cand) / runs):d}"


def _headlines(rows: list[MetricRow], tr: Language = ENGLISH) -> list[str]:
    # Biggest change first; a ratio of 0 is the biggest there is.
    decided = sorted(
        (r for r in rows if r.verdict in ("better", "worse") and r.ratio is not None),
        key=lambda r: -abs(math.log(r.ratio)) if r.ratio > 0 else -math.inf,
    )
    out = [r.sentence for r in decided[:MAX_HEADLINES]]
    if len(decided) > MAX_HEADLINES:
        out.append(tr.gettext("… and %(n)s more significant differences in the table below.") % {"n": len(decided) - MAX_HEADLINES})
    return out


# ---------------------------------------------------------------- criteria


def _audit_counts(valid: pd.DataFrame, pair: list[str]) -> list[dict[str, object]]:
    """Per audit-finding metric: the median count per run on each platform (and the runs it covers)."""
    if valid.empty:
        return []
    # Test the (few) metric names, not a million rows of them.
    names = valid["metric"].cat.categories if isinstance(valid["metric"].dtype, pd.CategoricalDtype) else valid["metric"].unique()
    audit_names = [str(m) for m in names if str(m).startswith(AUDIT_PREFIX)]
    if not audit_names:
        return []
    audit = valid[valid["metric"].isin(audit_names).to_numpy()]
    if audit.empty:
        return []
    per_run = audit.groupby(["metric", "platform", "run_id"], observed=True)["value"].median()
    out = []
    for metric in sorted({str(m) for m in audit["metric"].unique()}):
        row: dict[str, object] = {"metric": metric}
        for p in pair:
            try:
                v = per_run.loc[(metric, p)]
            except KeyError:
                row[p], row[f"{p} runs"] = None, 0
                continue
            row[p], row[f"{p} runs"] = float(v.median()), int(len(v))
        out.append(row)
    return out



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


def _split_skipped(rows: list[CriterionRow], pair: list[str], tr: Language) -> tuple[list[CriterionRow], list[SkippedGroup]]:
    """Criteria checked on some run stay in the matrix; the rest are grouped by their skip reason."""
    checked, groups = [], {}
    for row in rows:
        cells = [row.cells[p] for p in pair]
        if any(c.checked for c in cells):
            checked.append(row)
            continue
        details = list(dict.fromkeys(c.detail for c in cells if c.detail))
        reason = " / ".join(details) or tr.gettext("no reason recorded")
        groups.setdefault(reason, []).append(row.criterion)
    return checked, [SkippedGroup(reason, names) for reason, names in sorted(groups.items(), key=lambda g: -len(g[1]))]


def _emulated_counts(runs: list[RunInfo], pair: list[str]) -> dict[str, tuple[int, int]]:
    return {p: (sum(is_emulated(r) for r in runs if r.platform == p), sum(r.platform == p for r in runs)) for p in pair}


# ---------------------------------------------------------------- per-metric sections


def _sections(summary: list[MetricRow], quant: pd.DataFrame, attrs: pd.DataFrame, pair: list[str]) -> list[MetricSection]:
    shown = {aggregate.qname(q) for q in aggregate.QUANTILES}
    qcols = [c for c in quant.columns if c in shown] if len(quant) else []
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


BOX_QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)


def _charts(metrics, attrs, quant, rm, nightly, breaks, colors, pair, tr: Language = ENGLISH) -> list:
    """One combined chart per metric (distribution + nightly trend), in `metrics` order."""
    qnames = [aggregate.qname(q) for q in BOX_QUANTILES]
    boxes = {(str(r[0]), str(r[1])): charts.box_stats(*r[2:]) for r in quant[["platform", "metric", *qnames]].itertuples(index=False)} if len(quant) else {}
    rm_groups = {k: g["median"].to_numpy() for k, g in rm.groupby(["metric", "platform"], sort=False)}
    nightly_groups = {k: g for k, g in nightly.groupby(["metric", "platform"], sort=False)} if len(nightly) else {}
    out = []
    for metric in metrics:
        series = [(p, boxes.get((p, metric)), rm_groups.get((metric, p), np.array([]))) for p in pair]
        tseries = []
        for p in pair:
            g = nightly_groups.get((metric, p))
            if g is not None and len(g) >= 2:
                tseries.append((p, list(g["night"]), g["value"].to_numpy(dtype=float), breaks.get((metric, p), [])))
        out.append(charts.metric_chart(metric, str(attrs.at[metric, "unit"]), series, tseries, colors, tr.code))
    return out


def _stages(rm: pd.DataFrame, attrs: pd.DataFrame, pair: list[str], with_charts: bool, tr: Language = ENGLISH):
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
    chart = charts.stage_chart([m[len(STAGE_PREFIX):] for m in order], pair, grid, unit, tr.code) if with_charts else None
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


def _nodes_text(info: RunInfo, tr: Language = ENGLISH) -> str:
    parts = []
    for n in info.nodes:
        size = "/".join(
            x for x in (
                f"{n.vcpu} vCPU" if n.vcpu else "",
                f"{tr.num(n.memory_mib / 1024)} GiB" if n.memory_mib else "",
                tr.gettext("%(n)s GiB disk") % {"n": tr.num(n.disk_gib)} if n.disk_gib else "",
            ) if x
        )
        parts.append(f"{n.count}× {n.role}" + (f" {size}" if size else ""))
    return ", ".join(parts)


def _hypervisor_text(info: RunInfo) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(info.hypervisor.items()) if v not in (None, "", [], {}))


def _inventory(runs: list[RunInfo], valid: pd.DataFrame, pair: list[str], nights: dict[str, str],
               tr: Language = ENGLISH) -> list[RunEntry]:
    counts = valid.groupby("run_id", observed=True).size() if len(valid) else pd.Series(dtype=int)
    out = []
    for r in sorted(runs, key=lambda r: (r.platform, r.started or "", r.run_id)):
        out.append(
            RunEntry(
                run_id=r.run_id,
                platform=r.platform,
                cluster=r.cluster,
                date=nights.get(r.run_id, ""),
                status=r.status,
                okd_version=r.okd_version or "",
                nodes=_nodes_text(r, tr),
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


def _run_warnings(runs: list[RunInfo], pair: list[str], tr: Language = ENGLISH) -> list[str]:
    _, ngettext = tr.gettext, tr.ngettext
    warnings = []
    in_pair = [r for r in runs if r.platform in pair]
    not_done = [r for r in in_pair if r.status != "complete"]
    if not_done:
        kinds = Counter(r.status for r in not_done)
        text = ", ".join(f"{n} {_(k)}" for k, n in sorted(kinds.items()))
        warnings.append(_("runs not complete included (%(kinds)s): their recorded samples are used; they are marked in the inventory") % {"kinds": text})
    sizes = {p: sorted({_nodes_text(r, tr) for r in in_pair if r.platform == p and r.nodes}) for p in pair}
    if all(sizes[p] for p in pair) and sizes[pair[0]] != sizes[pair[1]]:
        warnings.append(
            _("cluster sizes differ between platforms: %(sizes)s — differences may come from the sizing, not the hypervisor")
            % {"sizes": tr.sep(";").join(p + tr.sep(":") + " | ".join(sizes[p]) for p in pair)}
        )
    for p in pair:
        emulated = [r for r in in_pair if r.platform == p and is_emulated(r)]
        if emulated:
            warnings.append(
                ngettext(
                    "%(p)s: %(n)s run ran on a software-emulated hypervisor (QEMU TCG, no KVM acceleration): "
                    "its timings say nothing about production performance",
                    "%(p)s: %(n)s runs ran on a software-emulated hypervisor (QEMU TCG, no KVM acceleration): "
                    "their timings say nothing about production performance",
                    len(emulated),
                ) % {"p": p, "n": len(emulated)}
            )
    insecure = [r.run_id for r in in_pair if r.insecure]
    if insecure:
        warnings.append(
            ngettext("%(n)s run was made with --insecure (TLS verification off)",
                     "%(n)s runs were made with --insecure (TLS verification off)", len(insecure)) % {"n": len(insecure)}
        )
    run_msgs = Counter(w for r in in_pair for w in r.warnings)
    for msg, n in sorted(run_msgs.items()):
        # Recorded by the runs (English): shown as recorded.
        warnings.append(tr.gettext("%(warning)s (%(n)s runs)") % {"warning": msg, "n": n} if n > 1 else msg)
    return warnings
