"""Run a workload as a Job and read what its pod printed (fio, iperf3: JSON on stdout)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from suites.kube import Kube, KubeError, condition_is, path_for, wait_for


@dataclass
class JobOutcome:
    name: str
    succeeded: bool
    pod: str | None
    node: str | None
    log: str
    reason: str  # one line when not succeeded


def _finished(job: dict) -> bool:
    return condition_is(job, "Complete") or condition_is(job, "Failed")


def wait_job(kube: Kube, namespace: str, name: str, timeout_s: float) -> JobOutcome:
    job = wait_for(kube, path_for("batch/v1", "jobs", namespace), _finished, timeout_s, field_selector=f"metadata.name={name}")
    pods = kube.list(path_for("v1", "pods", namespace), labelSelector=f"job-name={name}")
    pod = pods[-1] if pods else None
    pod_name = pod["metadata"]["name"] if pod else None
    node = (pod or {}).get("spec", {}).get("nodeName")
    log = ""
    if pod_name:
        try:
            log = kube.logs(namespace, pod_name)
        except KubeError:
            log = ""
    if job is None:
        return JobOutcome(name, False, pod_name, node, log, f"job {name} did not finish within {timeout_s:.0f}s")
    if condition_is(job, "Failed"):
        reason = next((c.get("message") or c.get("reason") for c in job["status"]["conditions"] if c.get("type") == "Failed"), "")
        return JobOutcome(name, False, pod_name, node, log, f"job {name} failed on {node or '?'}: {reason}")
    return JobOutcome(name, True, pod_name, node, log, "")


def json_output(outcome: JobOutcome) -> dict[str, Any]:
    """The tool's JSON report; tools may print warnings before it, so parse from the first '{'."""
    text = outcome.log
    start = text.find("{")
    if start < 0:
        raise ValueError(f"job {outcome.name}: no JSON in the pod log ({len(text)} bytes)")
    obj, _ = json.JSONDecoder().raw_decode(text[start:])
    return obj
