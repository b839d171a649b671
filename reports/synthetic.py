"""Run folders of known truth, written through the real results contract (RunWriter).

Used by the report tests and the demo: each run gets its own multiplicative run effect
(run-to-run variation) on top of per-sample noise, which is what makes pooled-sample
statistics lie and run-level statistics honest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from results.schema import CriterionResult, NodeGroupInfo, RunInfo, Sample, iso
from results.store import RunWriter


@dataclass
class MetricTruth:
    metric: str
    level: float  # typical value on the platform
    unit: str = "s"
    better: str = "lower"
    suite: str = "builds"
    run_sd: float = 0.05  # run-to-run variation (log scale)
    sample_sd: float = 0.02  # within-run variation (log scale)
    samples: int = 10


@dataclass
class PlatformTruth:
    platform: str
    metrics: list[MetricTruth]
    runs: int = 4
    nodes: list[NodeGroupInfo] = field(
        default_factory=lambda: [NodeGroupInfo("control-plane", 3, 4, 16384, 120), NodeGroupInfo("worker", 2, 4, 16384, 120)]
    )
    hypervisor: dict[str, Any] = field(default_factory=dict)
    criteria: dict[str, str] = field(default_factory=dict)  # criterion -> status for every run
    status: str = "complete"
    cluster: str = "okd-poc"
    okd_version: str = "4.15.0-0.okd-2024-03-10-010116"


def write_platform(
    results_dir: Path,
    truth: PlatformTruth,
    rng: np.random.Generator,
    first_night: datetime = datetime(2024, 3, 1, 1, 0, tzinfo=timezone.utc),
    step: dict[str, tuple[int, float]] | None = None,
) -> list[Path]:
    """Write truth.runs run folders, one per night. `step`: metric -> (run index, factor) from which on."""
    dirs = []
    for i in range(truth.runs):
        started = first_night + timedelta(days=i)
        run_id = f"{started:%Y%m%dT%H%M%SZ}-{truth.platform}-{i:03d}"
        info = RunInfo(
            run_id=run_id, platform=truth.platform, cluster=truth.cluster, started=iso(started),
            okd_version=truth.okd_version, nodes=list(truth.nodes), hypervisor=dict(truth.hypervisor),
            hypervisor_platform=truth.platform.split("-")[0],
        )
        w = RunWriter(results_dir, info)
        for m in truth.metrics:
            factor = 1.0
            if step and m.metric in step and i >= step[m.metric][0]:
                factor = step[m.metric][1]
            run_level = m.level * factor * np.exp(rng.normal(0.0, m.run_sd))
            values = run_level * np.exp(rng.normal(0.0, m.sample_sd, m.samples))
            for k, v in enumerate(values):
                w.record_sample(
                    Sample(run_id=run_id, platform=truth.platform, cluster=truth.cluster, suite=m.suite,
                           metric=m.metric, value=float(v), unit=m.unit, better=m.better, repetition=k,  # type: ignore[arg-type]
                           timestamp=started + timedelta(seconds=k), labels={"node": "worker-0"})
                )
        for crit, status in truth.criteria.items():
            w.record_criterion(CriterionResult(run_id, truth.platform, crit, status, detail=f"{crit}: {status}"))  # type: ignore[arg-type]
        if truth.status != "running":
            w.finish(truth.status)
        dirs.append(w.dir)
    return dirs
