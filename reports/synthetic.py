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
    labels: dict[str, Any] = field(default_factory=lambda: {"node": "worker-0"})


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
    details: dict[str, str] | None = None,
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
                           timestamp=started + timedelta(seconds=k), labels=dict(m.labels))
                )
        for crit, status in truth.criteria.items():
            detail = (details or {}).get(crit, f"{crit}: {status}")
            w.record_criterion(CriterionResult(run_id, truth.platform, crit, status, detail=detail))  # type: ignore[arg-type]
        if truth.status != "running":
            w.finish(truth.status)
        dirs.append(w.dir)
    return dirs


SKIP_NO_CLUSTER = "no OKD cluster (pass --kubeconfig or an OKD --spec)"
DEMO_SKIPPED = [f"okd.{name}" for name in (
    "install", "nodes.ready", "csr.approved", "operators.available", "operators.not_degraded", "builds.s2i",
    "builds.docker", "registry.push", "registry.pull", "ingress.route", "dns.resolution", "storage.pvc",
    "storage.snapshot", "monitoring.alerts", "etcd.health", "etcd.fsync", "upgrade.path", "machineconfig.pools",
    "console.reachable", "oauth.login", "network.policy", "network.mtu", "pods.eviction", "scheduler.spread",
    "stability.soak", "logging.forwarding")]


def write_demo_like(results_dir: Path, rng: np.random.Generator, runs: int = 3) -> None:
    """What `okdbench demo` produces (kvm-default vs kvm-tuned on an emulated host), with known truth.

    26 OKD criteria skipped for want of a cluster, one audit criterion failed on the default
    variant, audit finding counts 2 → 0, emulation-grade noise on provisioning (60 % run to run)
    and dotted metric names long enough to wrap.
    """
    def metrics(tuned: bool) -> list[MetricTruth]:
        f = 0.8 if tuned else 1.0
        return [
            MetricTruth("provision.vms.duration", 40.0, suite="provision", run_sd=0.6, samples=1),
            MetricTruth("guest.boot.userspace.duration", 7.0 * f, suite="probes", run_sd=0.04, samples=3),
            MetricTruth("guest.disk.fdatasync.iops", 900.0 / f, unit="iops", better="higher", suite="probes", run_sd=0.08, samples=3),
            MetricTruth("guest.disk.seq_write.throughput", 300.0, unit="MB/s", better="higher", suite="probes", run_sd=0.1, samples=3),
            MetricTruth("guest.cpu.sha256.throughput", 400.0, unit="MB/s", better="higher", suite="probes", run_sd=0.03, samples=3),
            MetricTruth("guest.net.loopback.latency", 0.2, unit="ms", suite="probes", run_sd=0.3, samples=5),
            MetricTruth("audit.findings.total", 0.0 if tuned else 2.0, unit="count", suite="audit", run_sd=0.0, sample_sd=0.0, samples=1),
        ]
    for i, label in enumerate(("kvm-default", "kvm-tuned")):
        criteria = {name: "skipped" for name in DEMO_SKIPPED}
        criteria["platform.audit"] = "passed" if label == "kvm-tuned" else "failed"
        truth = PlatformTruth(label, metrics(label == "kvm-tuned"), runs=runs, criteria=criteria, cluster=f"demo-{label}",
                              hypervisor={"libvirt": "9.0.0", "qemu": "7.2.0", "emulated": True, "domain_type": "qemu"},
                              nodes=[NodeGroupInfo("worker", 3, 1, 512, 2)])
        write_platform(results_dir, truth, rng, first_night=datetime(2024, 3, 1, 1 + i, 0, tzinfo=timezone.utc),
                       details={name: SKIP_NO_CLUSTER for name in DEMO_SKIPPED})
