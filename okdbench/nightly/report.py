"""Regenerate the comparison report with trends over every run in results_dir.

The analysis and rendering are the reports package's (`okdbench report`); this module only
chooses the inputs a nightly has (its config) and extracts what summary.json needs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
    report = build_report(runset, baseline=baseline, candidate=candidate, opts=Options(), acks=acks, costs=costs,
                          title=title % {"candidate": candidate, "baseline": baseline}, lang=cfg.lang)
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
    incomplete = [r.run_id for r in report.runs if r.incomplete]
    if incomplete:
        log.info("report lists %d incomplete run(s)", len(incomplete))
    return ReportOutcome(path=str(out), regressions=regressions, worse=worse, warnings=list(report.warnings))
