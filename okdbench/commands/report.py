"""okdbench report: turn run folders into the comparison report (HTML) or its summary table (CSV/JSON)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from plumbing.errors import UserError

HELP = "compare platforms from run folders: verdicts, trends, HTML/CSV/JSON"
DESCRIPTION = """\
Read run folders (results/<run_id>/ or folders of them), compare a baseline platform with a
candidate on run medians, and write one self-contained HTML report (or the summary table as
CSV/JSON, one row per metric with a `verdict` column).

With exactly two platforms and one of them vsphere, vsphere is the baseline. Otherwise name
them: --baseline vsphere --candidate kvm (any --label used when running works)."""

log = logging.getLogger("okdbench.report")


def _fraction(name: str):
    def parse(text: str) -> float:
        try:
            v = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: {text!r} is not a number; e.g. 0.25 or 25%") from None
        if not 0 < v < 10:
            raise argparse.ArgumentTypeError(f"{name}: {text!r} out of range; give a fraction such as 0.05 or 5%")
        return v

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULTS_DIR", help="run folders, or folders holding run folders")
    parser.add_argument("--out", type=Path, default=None,
                        help="output file (default reports/out/comparison.html, or .csv/.json for those formats)")
    parser.add_argument("--baseline", help="platform label to compare against (default: vsphere when it is one of two)")
    parser.add_argument("--candidate", help="platform label being evaluated")
    parser.add_argument("--format", choices=("html", "csv", "json"), default=None,
                        help="html (default, or taken from --out's suffix), or the summary table as csv/json")
    parser.add_argument("--costs", type=Path, help="YAML with licence/support/admin figures for a TCO table (see examples/costs.yaml)")
    parser.add_argument("--ack", type=Path, help="YAML of acknowledged regressions (metric, platform, date, reason; see examples/acks.yaml)")
    parser.add_argument("--cv-limit", type=_fraction("--cv-limit"), default=0.25,
                        help="run-to-run coefficient of variation above which an inconclusive metric reads 'variance too high' and a better/worse one is marked noisy (default 0.25)")
    parser.add_argument("--regression-threshold", type=_fraction("--regression-threshold"), default=0.05,
                        help="flag a trend when the newest level is worse than the previous by more than this (default 0.05)")
    parser.add_argument("--test", choices=("welch", "mannwhitney"), default="welch",
                        help="test on run medians: Welch t on log values (default) or Mann-Whitney U (>= 4 runs a side)")
    parser.add_argument("--primary", action="append", default=[], metavar="METRIC",
                        help="a metric named before the runs as the question the comparison answers (repeatable): "
                             "the primary metrics share 80 %% of alpha in Holm's correction, the others the rest")
    parser.add_argument("--title", help="report title")
    from reports.i18n import LANGUAGES  # gettext only: keeps `--help` fast

    parser.add_argument("--lang", choices=LANGUAGES, default="en",
                        help="language of the HTML report: en (default) or fr (sentences, verdicts, numbers, dates)")
    parser.add_argument("--exclude-contended", action="store_true",
                        help="compute the verdicts without runs whose conditions crossed a contention threshold "
                             "(CPU steal/ready/delay > 5 %% of a vCPU, swap activity, host vCPU:pCPU above the audit's limit); "
                             "the Conditions section shows the verdicts with all runs")


def run(args: argparse.Namespace) -> int:
    # Imported here so `okdbench --help` stays fast.
    from reports import analysis, costs, render, trends
    from reports.model import Options
    from results.store import find_run_dirs, load_runs

    fmt = args.format
    if fmt is None:
        suffix = args.out.suffix.lower().lstrip(".") if args.out else ""
        fmt = suffix if suffix in ("csv", "json") else "html"
    out = args.out or Path("reports/out") / f"comparison.{fmt}"

    for p in args.results:
        if not Path(p).exists():
            raise UserError(f"RESULTS_DIR {p}: no such folder; pass results/ or a results/<run_id>/ folder")
    if not find_run_dirs(args.results):
        raise UserError(
            f"RESULTS_DIR {' '.join(map(str, args.results))}: no run folders found (a run folder holds run.json "
            "and samples); run `okdbench run` first or point at results/"
        )
    # Validate the small inputs before reading many runs.
    cost_table = costs.load_costs(args.costs) if args.costs else None
    acks = trends.load_acks(args.ack) if args.ack else []

    t0 = time.perf_counter()
    runset = load_runs(args.results, categorical=True)
    log.info("report: read %d runs, %d samples (%.1f s)", len(runset.runs), len(runset.samples), time.perf_counter() - t0)
    opts = Options(cv_limit=args.cv_limit, regression_threshold=args.regression_threshold, test=args.test,
                   exclude_contended=args.exclude_contended, primary=tuple(dict.fromkeys(args.primary)))
    report = analysis.build_report(
        runset, args.baseline, args.candidate, opts, acks=acks, costs=cost_table, title=args.title,
        with_charts=fmt == "html", lang=args.lang,
    )
    try:
        render.write_output(report, out, fmt)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write ({exc.strerror})") from None
    counts = ", ".join(f"{n} {v}" for v, n in report.verdict_counts.items() if n)
    flagged = sum(t.flagged for t in report.trends)
    contended = len(report.conditions.contended) if report.conditions else 0
    print(f"{out}: {len(report.summary)} metrics ({counts or 'none'}), {flagged} trend regression(s), "
          f"{contended} contended run(s){' excluded' if contended and args.exclude_contended else ''}, "
          f"{len(report.warnings)} warning(s) [{time.perf_counter() - t0:.1f} s]")
    return 0
