"""Regenerate the comparison report with trends over every run in results_dir.

The analysis and rendering are the reports package's (`okdbench report`); this module only
chooses the inputs a nightly has (its config) and extracts what summary.json needs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from okdbench.nightly.config import NightlyConfig
from results.store import load_runs

log = logging.getLogger("okdbench.nightly.report")


@dataclass
class ReportOutcome:
    """What the nightly summary needs of the regenerated report."""

    path: str | None
    regressions: list[dict[str, Any]]
    worse: list[dict[str, Any]]
    warnings: list[str]
    contended: list[dict[str, Any]] = field(default_factory=list)  # runs whose conditions crossed a threshold


def nightly_report(cfg: NightlyConfig) -> ReportOutcome:
    from reports.analysis import build_report
    from reports.i18n import language
    from reports.model import Options
    from reports.render import write_output

    acks = costs = None
    if cfg.ack is not None:
        from reports.trends import load_acks

        acks = load_acks(cfg.ack)
    if cfg.costs is not None:
        from reports.costs import load_costs

        costs = load_costs(cfg.costs)
    runset = load_runs([cfg.results_dir])
    baseline, candidate = cfg.comparison()
    title = language(cfg.lang).gettext("Nightly: OKD on %(candidate)s compared with %(baseline)s")
    report = build_report(runset, baseline=baseline, candidate=candidate, opts=Options(primary=tuple(cfg.primary)),
                          acks=acks, costs=costs, title=title % {"candidate": candidate, "baseline": baseline},
                          lang=cfg.lang)
    out = Path(cfg.reports_dir) / f"{cfg.report_name}.html"
    write_output(report, out, "html")
    write_output(report, out.with_suffix(".json"), "json")
    regressions: list[dict[str, Any]] = [
        {
            "metric": t.metric,
            "platform": t.platform,
            "since": t.change_points[-1].date if t.change_points else None,
            "change_pct": round(t.change_points[-1].change_pct, 3) if t.change_points else None,
            "message": t.message,
        }
        for t in report.trends
        if t.flagged
    ]
    worse = [
        {"metric": r.metric, "ratio": r.ratio, "ci_low": r.ci_low, "ci_high": r.ci_high, "sentence": r.sentence}
        for r in report.summary
        if r.verdict == "worse"
    ]
    contended = contended_runs(report)
    for reg in regressions:
        night = _latest_contended(report, reg["platform"], contended)
        if night:
            reg["contended"] = night
            reg["message"] += f" — but the newest run on {reg['platform']} was contended ({'; '.join(night)}): it may be the host, not a regression"
    incomplete = [r.run_id for r in report.runs if r.incomplete]
    if incomplete:
        log.info("report lists %d incomplete run(s)", len(incomplete))
    return ReportOutcome(path=str(out), regressions=regressions, worse=worse, warnings=list(report.warnings),
                         contended=contended)


def contended_runs(report: Any) -> list[dict[str, Any]]:
    """The report's contended runs (reports/conditions.py thresholds) as summary.json entries."""
    if report.conditions is None:
        return []
    dates = {r.run_id: r.date for r in report.runs}
    return [{"run_id": c.run_id, "platform": c.platform, "date": dates.get(c.run_id), "reasons": c.reasons}
            for c in report.conditions.contended]


def _latest_contended(report: Any, platform: str, contended: list[dict[str, Any]]) -> list[str]:
    """Reasons when the platform's newest night had a contended run ([] otherwise)."""
    nights = [r.date for r in report.runs if r.platform == platform and r.date]
    if not nights:
        return []
    latest = max(nights)
    return [reason for c in contended if c["platform"] == platform and c["date"] == latest for reason in c["reasons"]]
