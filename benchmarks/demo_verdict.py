"""How often, and how fast, `okdbench demo` reaches a conclusive verdict on this machine.

    python benchmarks/demo_verdict.py --demos 3            # run 3 demos one after the other (defaults), then tabulate
    python benchmarks/demo_verdict.py --demos 2 -- --repeat 3   # extra arguments go to `okdbench demo`
    python benchmarks/demo_verdict.py DIR [DIR ...]        # tabulate demo output folders made earlier

Per demo: wall time (for folders made earlier: first run's start to last run's end, the report and
preparation excluded), the load average when it ended, the primary metric's verdict, ratio, raw and
Holm p and run-to-run CVs, and how many guest metrics were conclusive. Not a test: nothing asserts.
Run it on an idle machine; what else runs changes the answer (the report's Conditions section
says which runs were contended).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from okdbench.demo import BASELINE, CANDIDATE, PRIMARY  # noqa: E402


def run_demo(out: Path, extra: list[str]) -> float:
    t0 = time.monotonic()
    with open(out.with_suffix(".log"), "w") as log:
        code = subprocess.call([sys.executable, "-m", "okdbench", "demo", "--out", str(out), *extra], cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT)
    if code not in (0, 1):  # 1: a criterion failed unexpectedly; the runs still count
        raise SystemExit(f"demo {out} exited {code}; see {out.with_suffix('.log')}")
    return time.monotonic() - t0


def runs_span(results: Path) -> float | None:
    docs = [json.loads(p.read_text()) for p in results.glob("*/run.json")]
    stamps = [(d.get("started"), d.get("finished")) for d in docs]
    if not stamps or any(s is None or f is None for s, f in stamps):
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (max(parse(f) for _, f in stamps) - min(parse(s) for s, _ in stamps)).total_seconds()


def verdicts(results: Path) -> list[dict[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "summary.csv"
        subprocess.run([sys.executable, "-m", "okdbench", "report", str(results), "--baseline", BASELINE,
                        "--candidate", CANDIDATE, "--primary", PRIMARY, "--out", str(out)],
                       cwd=ROOT, check=True, capture_output=True)
        return list(csv.DictReader(out.open()))


def line(name: str, seconds: float | None, exact: bool, rows: list[dict[str, str]], load: str) -> str:
    guest = [r for r in rows if r["metric"].startswith("guest.")]
    primary = next(r for r in rows if r["primary"] == "True")
    conclusive = [r["metric"] for r in guest if r["verdict"] in ("better", "worse")]
    m, s = divmod(int(seconds or 0), 60)
    when = f"{m}m{s:02d}s" + ("" if exact else " (runs)") if seconds is not None else "?"
    g = lambda k: f"{float(primary[k]):.3g}" if primary[k] else "-"  # noqa: E731
    return (f"{name:24s} {when:13s} load {load:14s} {primary['verdict']:26s} x{g('ratio'):6s} p {g('p_value'):7s} "
            f"Holm {g('p_holm'):7s} CV {g('cv_base')}/{g('cv_cand'):6s} conclusive guest metrics: {len(conclusive)} "
            f"({', '.join(conclusive) or 'none'})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", type=Path, help="demo output folders made earlier (holding results/)")
    ap.add_argument("--demos", type=int, default=0, help="run this many demos first (into .cache/demo_verdict/)")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="after --: arguments for okdbench demo")
    args = ap.parse_args()
    extra = [a for a in args.extra if a != "--"]
    todo: list[tuple[Path, float | None, str]] = [(f, None, "-") for f in args.folders]
    for _ in range(args.demos):
        out = ROOT / ".cache" / "demo_verdict" / datetime.now().strftime("%Y%m%dT%H%M%S")
        out.parent.mkdir(parents=True, exist_ok=True)
        seconds = run_demo(out, extra)
        todo.append((out, seconds, "%.2f %.2f %.2f" % os.getloadavg()))
    print(f"primary metric: {PRIMARY} ({CANDIDATE} vs {BASELINE})")
    for folder, seconds, load in todo:
        exact = seconds is not None
        span = seconds if exact else runs_span(folder / "results")
        print(line(folder.name, span, exact, verdicts(folder / "results"), load))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
