"""What the report's run-to-run CV limit buys: false calls and power, with and without gating a significant result.

    python benchmarks/cv_gate.py                 # 4 runs a side, 20 000 simulated comparisons per scenario
    python benchmarks/cv_gate.py --runs 6 --sims 5000

Each scenario draws run medians (log-normal: the log of a run median is normal with the given sd,
about its CV) for two platforms and decides one metric with reports.stats, as a report with a single
metric would (Holm changes nothing for one). Two policies:
- "gate": the verdict before 2026-12-04: any side's CV above Options.cv_limit → "variance too high",
  whatever the test says;
- "now":  reports.stats.verdict: the CV limit only turns an inconclusive result into "variance too high";
  a significant one keeps better/worse and is marked noisy.
Under A/A (same true level) the share of better/worse is the false-call rate (should stay near alpha);
under a true shift it is the power. Not a test: nothing asserts; the numbers are quoted in stats.verdict.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reports import stats  # noqa: E402
from reports.model import Options  # noqa: E402

# (name, log-sd baseline, log-sd candidate, true ratio candidate/baseline, baseline shape)
SCENARIOS = [
    ("A/A, both 30 %", 0.3, 0.3, 1.0, "lognormal"),
    ("A/A, 30 % vs 7 % (the demo's WAL fsync)", 0.3, 0.07, 1.0, "lognormal"),
    ("A/A, 50 % vs 5 %", 0.5, 0.05, 1.0, "lognormal"),
    ("A/A, two run levels x2 apart vs 7 %", None, 0.07, 1.0, "bimodal"),
    ("shift x1.5, 30 % vs 7 %", 0.3, 0.07, 1.5, "lognormal"),
    ("shift x1.3, 30 % vs 7 %", 0.3, 0.07, 1.3, "lognormal"),
    ("shift x1.2, both 5 % (quiet: the gate never acts)", 0.05, 0.05, 1.2, "lognormal"),
]


def draw(rng: np.random.Generator, n: int, sd: float | None, shape: str) -> np.ndarray:
    if shape == "bimodal":  # each run lands on one of two levels (0.7 or 1.4), tight within a level
        levels = np.where(rng.random(n) < 0.5, np.log(0.7), np.log(1.4))
        return np.exp(levels + rng.normal(0.0, 0.05, n))
    return np.exp(rng.normal(0.0, sd, n))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=4, help="runs per platform (default 4, the demo's)")
    ap.add_argument("--sims", type=int, default=20000, help="simulated comparisons per scenario")
    ap.add_argument("--seed", type=int, default=20261204)
    args = ap.parse_args()
    opts = Options()
    rng = np.random.default_rng(args.seed)
    print(f"{args.runs} runs a side, {args.sims} comparisons per scenario, alpha {opts.alpha}, CV limit {opts.cv_limit}")
    print(f"{'scenario':52s} {'gate':>7s} {'now':>7s}  (share called better/worse)")
    for name, sd_b, sd_c, ratio, shape in SCENARIOS:
        gate = now = 0
        # the candidate's centre: the baseline's log-mean times the true ratio (bimodal: mid-way between its levels)
        centre = (np.log(0.7) + np.log(1.4)) / 2 if shape == "bimodal" else 0.0
        for _ in range(args.sims):
            base = draw(rng, args.runs, sd_b, shape)
            cand = np.exp(centre + np.log(ratio) + rng.normal(0.0, sd_c, args.runs))
            c = stats.compare_runs(base, cand, opts)
            called = stats.verdict(c, c.p_value, "lower", opts) in ("better", "worse")
            now += called
            gate += called and not stats.noisy(c, opts)
        print(f"{name:52s} {gate / args.sims:7.1%} {now / args.sims:7.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
