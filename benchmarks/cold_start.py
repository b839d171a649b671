"""Cold start of the okdbench CLI: median wall time of fresh processes for --help, render and report.

    python benchmarks/cold_start.py                    # this checkout, 5 fresh processes per command
    python benchmarks/cold_start.py --repo /tmp/old --repo .   # two checkouts (before/after), interleaved

Each command runs in a new interpreter (`python -m okdbench ...` with the checkout first on
sys.path), one after the other, interleaved round by round (and checkout by checkout) so drift in
the machine's load hits every command and checkout alike. `render` uses examples/kvm-cluster.yaml with a throwaway SSH key in a
temporary HOME; `report` reads a small synthetic results folder (2 platforms x 3 runs x 5 metrics,
written by reports.synthetic) and writes HTML. Prints one line per command: median, min, max.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def synthetic_results(folder: Path) -> Path:
    sys.path.insert(0, str(HERE))
    import numpy as np

    from reports.synthetic import MetricTruth, PlatformTruth, write_platform

    metrics = [MetricTruth(f"build.stage{i}", 30.0 + i) for i in range(5)]
    rng = np.random.default_rng(12)
    for platform in ("vsphere", "kvm"):
        write_platform(folder, PlatformTruth(platform, metrics, runs=3), rng)
    return folder


def ssh_home(folder: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    (folder / ".ssh").mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    (folder / ".ssh" / "id_ed25519.pub").write_bytes(key + b" cold-start\n")
    return folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, action="append",
                    help="checkout to measure; repeat to compare, interleaved (default: this one)")
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per command (default 5)")
    args = ap.parse_args()
    repos = [r.resolve() for r in args.repo or [HERE]]
    with tempfile.TemporaryDirectory(prefix="okdbench-coldstart-") as tmp:
        tmp = Path(tmp)
        results = synthetic_results(tmp / "results")
        home = ssh_home(tmp / "home")
        times: dict[tuple[Path, str], list[float]] = {}
        for _ in range(args.runs):
            for repo in repos:
                env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(repo)}
                commands = {
                    "--help": ["--help"],
                    "render": ["render", "--spec", str(repo / "examples" / "kvm-cluster.yaml"), "--out", str(tmp / "render")],
                    "report": ["report", str(results), "--baseline", "vsphere", "--candidate", "kvm",
                               "--out", str(tmp / "report.html")],
                }
                for name, argv in commands.items():
                    t0 = time.perf_counter()
                    proc = subprocess.run([sys.executable, "-m", "okdbench", *argv], cwd=tmp, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                    times.setdefault((repo, name), []).append(time.perf_counter() - t0)
                    if proc.returncode != 0:
                        print(f"{repo} {name}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}",
                              file=sys.stderr)
                        return 1
    print(f"{args.runs} fresh processes per command, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for (repo, name), ts in times.items():
        print(f"  {str(repo):<32} okdbench {name:<7} median {statistics.median(ts):5.2f} s"
              f"   min {min(ts):5.2f}   max {max(ts):5.2f}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
