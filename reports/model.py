"""Typed content of a comparison report: what analysis produces and templates/exports consume.

Plain dataclasses, no behaviour beyond small derived values, so the analysis stays pure and
the template never computes anything that a test could not see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from reports.security import SecurityPosture

Verdict = Literal["better", "worse", "no significant difference", "variance too high", "not enough samples"]

VERDICTS: tuple[str, ...] = (
    "better",
    "worse",
    "no significant difference",
    "variance too high",
    "not enough samples",
)

MIN_RUNS = 3  # below this on either side no verdict is given, however many samples the runs hold
RUNS_NEEDED_SHOWN = 50  # beyond this "runs needed" only says "fix the noise first" (shown as "> 50")


@dataclass(frozen=True)
class Options:
    """Knobs of the analysis; defaults are what `okdbench report` uses."""

    alpha: float = 0.05
    cv_limit: float = 0.25  # run-to-run CV above which a metric is noisy (an inconclusive one: variance too high)
    regression_threshold: float = 0.05  # trend flag: newest segment worse than the previous by more than this
    detectable_difference: float = 0.05  # runs-needed: detect this relative difference ...
    power: float = 0.80  # ... with this power
    test: Literal["welch", "mannwhitney"] = "welch"
    bootstrap: int = 2000
    seed: int = 20240601  # bootstrap reproducibility: the same folders give the same report
    min_segment: int = 10  # no change point with fewer nights than this on either side
    ack_tolerance_days: int = 3  # an ack dated up to this many days before a change point still covers it
    exclude_contended: bool = False  # verdicts without runs whose conditions crossed reports/conditions.py's thresholds
    primary: tuple[str, ...] = ()  # metrics named before the runs: they share primary_share of alpha in Holm
    primary_share: float = 0.8  # the usual fallback split (0.04 of 0.05 to the primary question)


@dataclass
class Comparison:
    """Result of comparing the run-level values of one metric between two platforms."""

    n_base: int
    n_cand: int
    ratio: float | None  # candidate / baseline (geometric means of run medians), None if not positive
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    effect_size: float | None  # Hedges' g on the analysis scale
    cv_base: float | None
    cv_cand: float | None
    runs_needed: int | None  # per platform, to detect Options.detectable_difference at Options.power
    test: str
    log_scale: bool
    ci_level: float | None = None


@dataclass
class MetricRow:
    """One row of the executive summary (and of the CSV/JSON export)."""

    metric: str
    suite: str
    unit: str
    better: str
    baseline: str
    candidate: str
    runs_base: int
    runs_cand: int
    samples_base: int
    samples_cand: int
    median_base: float | None
    median_cand: float | None
    p95_base: float | None
    p95_cand: float | None
    cv_base: float | None
    cv_cand: float | None
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_holm: float | None
    effect_size: float | None
    test: str
    verdict: str
    runs_needed: int | None
    sentence: str
    ci_level: float | None = None  # confidence of [ci_low, ci_high]: the level the verdict's test used
    primary: bool = False  # named before the runs (Options.primary): weighted in Holm's correction
    noisy: bool = False  # runs of a side vary past Options.cv_limit (a better/worse verdict still stands)

    @property
    def change_pct(self) -> float | None:
        return None if self.ratio is None else (self.ratio - 1.0) * 100.0


@dataclass
class CriterionCell:
    status: str  # latest run's status on this platform, or "" when never checked
    detail: str
    passed: int
    checked: int  # runs where the criterion was passed/failed/error (skipped does not count)
    runs: int  # runs that recorded the criterion at all

    @property
    def pass_rate(self) -> float | None:
        return None if self.checked == 0 else self.passed / self.checked


@dataclass
class CriterionRow:
    criterion: str
    cells: dict[str, CriterionCell]  # platform -> cell
    fisher_p: float | None  # pass rates differ between baseline and candidate?


@dataclass
class SkippedGroup:
    reason: str  # the recorded skip detail (one per platform when they differ)
    criteria: list[str]


@dataclass
class Quantiles:
    platform: str
    n_samples: int
    values: dict[str, float]  # "p50" -> value, ...


@dataclass
class ChangePoint:
    date: str  # ISO date of the first night of the new segment
    before: float
    after: float
    change_pct: float
    acknowledged: str | None = None  # the ack's reason when one covers it


@dataclass
class Trend:
    metric: str
    platform: str
    better: str
    unit: str
    nights: int
    change_points: list[ChangePoint]
    flagged: bool  # newest segment worse than the one before by more than the threshold, not acknowledged
    message: str


@dataclass
class MetricSection:
    metric: str
    unit: str
    better: str
    row: MetricRow | None
    chart: str | None  # inline SVG markup (reports.charts)
    quantiles: list[Quantiles]
    trends: list[Trend] = field(default_factory=list)


@dataclass
class InvalidSample:
    run_id: str
    platform: str
    metric: str
    value: str
    reason: str


@dataclass
class RunEntry:
    run_id: str
    platform: str
    cluster: str
    date: str
    status: str
    okd_version: str
    nodes: str
    hypervisor: str
    samples: int
    incomplete: bool


@dataclass
class CostLine:
    item: str
    amounts: dict[str, float]  # platform -> amount over the period


@dataclass
class CostTable:
    currency: str
    years: int
    platforms: list[str]
    lines: list[CostLine]
    totals: dict[str, float]
    note: str


@dataclass
class Report:
    title: str
    generated: str
    baseline: str
    candidate: str
    platforms: list[str]
    options: Options
    summary: list[MetricRow]
    headlines: list[str]
    criteria: list[CriterionRow]
    sections: list[MetricSection]
    stage_chart: str | None
    stage_table: list[dict[str, object]]
    trends: list[Trend]
    runs: list[RunEntry]
    invalid: list[InvalidSample]
    invalid_total: int
    warnings: list[str]
    costs: CostTable | None
    verdict_counts: dict[str, int]
    resilience: object | None = None  # reports.resilience.ResilienceSection (that module imports this one)
    lang: str = "en"  # the language its sentences were written in (reports.i18n.LANGUAGES)
    audit_findings: list[dict[str, object]] = field(default_factory=list)  # audit.findings.* medians, never verdicts
    skipped_criteria: list[SkippedGroup] = field(default_factory=list)  # never checked on any run, by reason
    decision: list[str] = field(default_factory=list)  # the executive summary's first ≤ 5 lines
    noise: list[str] = field(default_factory=list)  # what to fix first when runs are too noisy to judge
    conditions: object | None = None  # reports.conditions.ConditionsSection (it imports this module)
    security: SecurityPosture | None = None  # reports/security.py: the Security posture table
    demo_note: object | None = None  # reports.demo_note.DemoNote: okdbench demo's explanation
