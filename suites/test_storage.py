"""storage: on each worker, the etcd-style fsync check (fio, 2300-byte writes + fdatasync, as the
OpenShift docs describe) and a sequential write throughput test, as Jobs; fsync p99 and MB/s."""

from __future__ import annotations

import logging
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

from suites.jobs import json_output, wait_job
from suites.kube import KubeError, path_for
from suites.workers import hostname, schedulable_workers
from suites.workloads import render

FSYNC_P99_ETCD_MS = 10.0
log = logging.getLogger("okdbench.storage")


def parse_fio(report: dict) -> tuple[float, float]:
    """(fdatasync p99 in ms of job etcd-fsync, write MB/s of job seq-write) from fio's JSON output."""
    jobs = {j["jobname"]: j for j in report.get("jobs", [])}
    sync = jobs["etcd-fsync"]["sync"]["lat_ns"]["percentile"]["99.000000"] / 1e6
    mbps = jobs["seq-write"]["write"]["bw"] * 1024 / 1e6  # fio's bw is KiB/s
    return sync, mbps


@pytest.mark.benchmark
@pytest.mark.criterion("storage")
def test_storage(kube, namespace, suite_options, record, note, fail_with_evidence):
    workers = schedulable_workers(kube)
    if not workers:
        pytest.skip("no Ready, schedulable worker nodes to run the storage test on")
    run = secrets.token_hex(2)
    jobs_path = path_for("batch/v1", "jobs", namespace)
    names: dict[str, str] = {}
    try:
        for i, node in enumerate(workers):
            name = f"okdbench-fio-{run}-{i}"
            kube.create(jobs_path, render("fio-job", name=name, namespace=namespace, node_hostname=hostname(node),
                                          image=suite_options.images["fio"], fsync_size="22m", seq_size="512m"))
            names[name] = node["metadata"]["name"]
        log.info("storage: fio jobs on %d workers", len(names))
        with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
            outcomes = list(pool.map(lambda n: wait_job(kube, namespace, n, suite_options.workload_timeout), names))
        failures, slow = [], []
        for out in outcomes:
            node = out.node or names[out.name]
            if not out.succeeded:
                failures.append(out.reason)
                continue
            try:
                fsync_ms, mbps = parse_fio(json_output(out))
            except (ValueError, KeyError, TypeError) as exc:
                failures.append(f"job {out.name} on {node}: unreadable fio output ({type(exc).__name__}: {exc})")
                continue
            record("storage.fsync.p99", fsync_ms, "ms", node=node)
            record("storage.write.throughput", mbps, "MB/s", better="higher", node=node)
            log.info("storage: %s fsync p99 %.2f ms, %.0f MB/s", node, fsync_ms, mbps)
            if fsync_ms > FSYNC_P99_ETCD_MS:
                slow.append(f"{node} {fsync_ms:.1f} ms")
        if slow:
            note(f"fsync p99 above the etcd recommendation ({FSYNC_P99_ETCD_MS:.0f} ms): {', '.join(slow)}")
        if failures:
            fail_with_evidence(f"{len(failures)} of {len(names)} storage jobs failed: {failures[0]}", [f"ns/{namespace}"])
    finally:
        for name in names:
            try:
                kube.delete(f"{jobs_path}/{name}", propagationPolicy="Background")
            except KubeError:
                pass
