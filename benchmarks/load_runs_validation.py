"""Does checking Parquet column types (issue 14) slow the bulk read of good results? load_runs on
730 compacted runs (report_scale.py --scale 0.1 data), median of 5 fresh processes, for this tree
and for another checkout given as BASELINE_TREE (e.g. `git archive a6b82e0 | tar -x -C /tmp/base`).

    python benchmarks/load_runs_validation.py [BASELINE_TREE]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".cache" / "load_runs_validation"
CODE = ("import time; from results.store import load_runs; t=time.perf_counter(); "
        f"rs=load_runs([{str(DATA)!r}], categorical=True); print(time.perf_counter()-t, len(rs.samples))")


def main() -> None:
    if not DATA.exists():
        sys.path.insert(0, str(ROOT))
        from benchmarks.report_scale import generate

        generate(DATA, 0.1)
    trees = [("this tree", ROOT)] + ([("baseline", Path(sys.argv[1]))] if len(sys.argv) > 1 else [])
    for name, tree in trees:
        times, samples = [], ""
        for _ in range(5):
            out = subprocess.run([sys.executable, "-c", CODE], cwd=tree, capture_output=True, text=True, check=True).stdout.split()
            times.append(float(out[0]))
            samples = out[1]
        print(f"{name}: load_runs of {samples} samples, median {statistics.median(times):.3f}s of {[round(t, 3) for t in times]}")


if __name__ == "__main__":
    main()
