"""How fast is `okdbench report` on a year of nightly runs?

Generates (once, cached under .cache/report_scale/) 2 platforms × 365 nights × 60 metrics ×
~23 samples ≈ 1,000,000 samples, one Parquet file per run written with pyarrow directly, then
times the full HTML report (with trends) in a fresh process: wall time and peak RSS.

    python benchmarks/report_scale.py              # 1× (1,000,000 samples)
    python benchmarks/report_scale.py --scale 0.1  # 0.1× for the linearity check
    python benchmarks/report_scale.py --scale 0.1 --scale 1   # both, with the ratio
    python benchmarks/report_scale.py --scale 0.1 --scale 1 --repeat 3   # median of 3 fresh processes each

The machine's load average is printed with every number: on a shared machine wall time says as
much about the neighbours as about the report; CPU seconds (report process) are the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from results.schema import CRITERIA_SCHEMA, SAMPLES_SCHEMA  # noqa: E402

PLATFORMS = ("vsphere", "kvm")
METRICS = 60
NIGHTS = 365
SAMPLES = 23


def generate(target: Path, scale: float, seed: int = 1) -> int:
    """Write the run folders; returns the sample count. `scale` multiplies samples per metric and run."""
    rng = np.random.default_rng(seed)
    per_run = max(1, round(SAMPLES * scale))
    metrics = [f"bench.metric{m:02d}" for m in range(METRICS - 5)] + [
        f"build.stage.{s}" for s in ("FetchInputs", "PullImages", "Build", "CommitContainer", "PushImage")
    ]
    levels = rng.uniform(1.0, 200.0, METRICS)
    better = np.where(rng.random(METRICS) < 0.2, "higher", "lower")
    units = np.where(better == "higher", "MB/s", "s")
    total = 0
    start = datetime(2024, 1, 1, 1, 0, tzinfo=timezone.utc)
    tmp = target.with_name(target.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    for p_i, platform in enumerate(PLATFORMS):
        shift = np.where(rng.random(METRICS) < 0.3, rng.uniform(0.85, 1.2, METRICS), 1.0) if p_i else np.ones(METRICS)
        # a few regressions half-way through the year
        step = np.where(rng.random(METRICS) < 0.1, 1.08, 1.0)
        for night in range(NIGHTS):
            started = start + timedelta(days=night)
            run_id = f"{started:%Y%m%dT%H%M%SZ}-{platform}"
            d = tmp / run_id
            d.mkdir(exist_ok=True)
            run_level = levels * shift * np.exp(rng.normal(0, 0.05, METRICS)) * np.where(night >= 200, step, 1.0)
            values = run_level[:, None] * np.exp(rng.normal(0, 0.03, (METRICS, per_run)))
            n = METRICS * per_run
            ts = np.datetime64(started.replace(tzinfo=None), "us") + np.arange(n).astype("timedelta64[s]")
            table = pa.table(
                {
                    "run_id": pa.array([run_id] * n),
                    "platform": pa.array([platform] * n),
                    "cluster": pa.array(["okd-bench"] * n),
                    "suite": pa.array(["bench"] * n),
                    "metric": pa.array(np.repeat(metrics, per_run)),
                    "value": pa.array(values.ravel()),
                    "unit": pa.array(np.repeat(units, per_run)),
                    "better": pa.array(np.repeat(better, per_run)),
                    "repetition": pa.array(np.tile(np.arange(per_run), METRICS).astype("int64")),
                    "timestamp": pa.array(ts, type=pa.timestamp("us", tz="UTC")),
                    "labels": pa.array(["{}"] * n),
                },
                schema=SAMPLES_SCHEMA,
            )
            pq.write_table(table, d / "samples.parquet", compression="zstd")
            crit = pa.table(
                {
                    "run_id": [run_id] * 3, "platform": [platform] * 3,
                    "criterion": ["install", "upgrade", "registry"],
                    "status": ["passed", "passed" if rng.random() > 0.05 else "failed", "passed"],
                    "detail": ["ok", "ok", "ok"], "duration_s": [1.0, 2.0, 3.0],
                },
                schema=CRITERIA_SCHEMA,
            )
            pq.write_table(crit, d / "criteria.parquet")
            info = {
                "run_id": run_id, "platform": platform, "cluster": "okd-bench", "status": "complete",
                "started": started.isoformat().replace("+00:00", "Z"),
                "finished": (started + timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
                "okd_version": "4.15.0-0.okd-2024-03-10-010116",
                "nodes": [{"role": "control-plane", "count": 3, "vcpu": 8, "memory_mib": 32768, "disk_gib": 120},
                          {"role": "worker", "count": 3, "vcpu": 8, "memory_mib": 32768, "disk_gib": 120}],
                "hypervisor": {"esxi": "8.0.2"} if platform == "vsphere" else {"libvirt": "9.0.0", "qemu": "7.2.0"},
            }
            (d / "run.json").write_text(json.dumps(info))
            total += n
    tmp.rename(target)
    return total


def dataset(scale: float) -> Path:
    target = ROOT / ".cache" / "report_scale" / f"x{scale:g}"
    if not target.exists():
        t0 = time.perf_counter()
        n = generate(target, scale)
        print(f"generated {n:,} samples in {target} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return target


def measure(scale: float, out_dir: Path) -> dict:
    data = dataset(scale)
    out = out_dir / f"scale-x{scale:g}.html"
    # A fresh process, as a user would run it; RUSAGE_CHILDREN gives its peak RSS.
    code = (
        "import resource, sys, time; t0 = time.perf_counter();"
        "from okdbench.cli import main; rc = main(sys.argv[1:]);"
        "print('WALL', time.perf_counter() - t0, file=sys.stderr); sys.exit(rc)"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, "report", str(data), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"report failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kib = after.ru_maxrss
    # CPU seconds of the report and its chart workers: comparable even when the machine is busy.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    phases = [ln for ln in proc.stderr.splitlines() if "report:" in ln]
    return {"scale": scale, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": peak_kib / 1024, "html_bytes": out.stat().st_size,
            "stdout": proc.stdout.strip(), "phases": phases}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, action="append", help="data size relative to 1,000,000 samples (repeatable)")
    ap.add_argument("--repeat", type=int, default=1, help="fresh processes per scale; the median is reported (default 1)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "out")
    args = ap.parse_args()
    scales = args.scale or [1.0]
    args.out.mkdir(parents=True, exist_ok=True)
    medians = []
    for s in scales:
        # peak RSS of children is a running maximum: measure the smallest scale first
        runs = []
        for _ in range(max(1, args.repeat)):
            load = os.getloadavg()[0]
            r = measure(s, args.out)
            runs.append(r)
            print(f"scale {s:g}: wall {r['wall_s']:.2f} s, CPU {r['cpu_s']:.2f} s, load avg {load:.1f} → {os.getloadavg()[0]:.1f}, "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB, HTML {r['html_bytes'] / 1e6:.1f} MB")
            for ph in r["phases"]:
                print("   ", ph)
        med = {k: statistics.median(r[k] for r in runs) for k in ("wall_s", "cpu_s", "peak_rss_mib")}
        medians.append((s, med))
        if len(runs) > 1:
            print(f"scale {s:g}: median of {len(runs)}: wall {med['wall_s']:.2f} s, CPU {med['cpu_s']:.2f} s, "
                  f"peak RSS {med['peak_rss_mib']:.0f} MiB")
    if len(medians) > 1:
        (sa, a), (sb, b) = medians[0], medians[-1]
        print(f"time ratio {b['wall_s'] / a['wall_s']:.2f}× wall, {b['cpu_s'] / a['cpu_s']:.2f}× CPU for {sb / sa:g}× data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
