"""okdbench nightly: the unattended comparison run a timer or CronJob starts every night."""

from __future__ import annotations

import argparse
import sys

HELP = "run the configured suites on every platform, refresh the trend report, write summary.json"

DESCRIPTION = """\
Run one nightly comparison, as configured in nightly.yaml (see examples/nightly.yaml):
for each platform, run the suites against a fresh or existing cluster (one run per platform
per night: the unit the statistics compare), then regenerate the comparison report with
trends over all nights and write reports/out/summary.json (regressions found, criteria
failed, runs included). A lock file keeps two nightlies from overlapping; raw JSONL of old
runs is pruned (Parquet is always kept); the summary can be POSTed to a webhook.

Exit codes: 0 all good; 1 a regression was flagged or a criterion failed;
2 the run itself could not happen (bad config, lock held, a platform could not run).
Scheduling examples (systemd timer, cron, Kubernetes CronJob): examples/scheduling/."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="nightly.yaml: platforms, suites, retention, webhook")
    parser.add_argument("--only", action="append", metavar="LABEL",
                        help="run only this platform label (repeatable); the report still covers all runs")
    parser.add_argument("--dry-run", action="store_true", help="validate the config and print the commands, run nothing")
    parser.add_argument("--quiet", action="store_true", help="do not echo the suites' output (it is still in logs_dir)")


def run(args: argparse.Namespace) -> int:
    from okdbench.nightly.config import load_config
    from okdbench.nightly.runner import ROOT, preflight, pytest_argv, run_nightly
    from plumbing.redact import install_log_filter, redact_argv

    install_log_filter()
    cfg = load_config(args.config)
    if args.dry_run:
        preflight(cfg, cfg.suites_root or ROOT)
        for p in cfg.platforms:
            if not args.only or p.label in args.only:
                print(f"{p.label}: " + " ".join(redact_argv(pytest_argv(p, cfg, "<run-id>"))[2:]))
        return 0
    echo = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    code, summary = run_nightly(cfg, only=args.only, echo=echo)
    print(f"okdbench nightly: {summary['verdict']} (exit {code}): "
          f"{len(summary['criteria_failed'])} criteria failed, {len(summary['regressions'])} regressions, "
          f"{len(summary['runs_included'])} runs in the report; summary: {cfg.reports_dir}/summary.json")
    for err in summary["errors"]:
        print(f"okdbench nightly: error: {err}", file=sys.stderr)
    return code
