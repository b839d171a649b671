"""Guest-side run conditions from the cluster's Prometheus (node-exporter, cAdvisor) over a window.

One instant query per condition at the window's end, over the window's length: the cluster's
Prometheus already samples every node, so nothing runs on the nodes during the benchmark.
Steal is the kernel's accounting of time a runnable vCPU was not run by the hypervisor
(/proc/stat "steal", node_cpu_seconds_total{mode="steal"}).
"""

from __future__ import annotations

import math
import time
from typing import Callable

from provision.base import Reading

QueryFn = Callable[[str, float], list[dict]]  # (PromQL, evaluation time as Unix seconds) -> result vector

CPUS = 'count by (instance) (node_cpu_seconds_total{mode="idle"})'
# A window shorter than this is read over the last MIN_RANGE_S: rate() needs two scrapes, and
# OpenShift's monitoring scrapes node-exporter every 30 s.
MIN_RANGE_S = 60
REAL_DISKS = 'device!~"dm-.*|loop.*|sr.*|nbd.*|ram.*|zram.*|md.*"'


def queries(range_s: int, namespace: str | None) -> list[tuple[str, str, str, str]]:
    """(metric, unit, better, PromQL) for a window of range_s seconds."""
    r = f"[{range_s}s]"
    out = [
        ("context.guest.cpu.steal", "ratio", "lower",
         f'sum by (instance) (rate(node_cpu_seconds_total{{mode="steal"}}{r})) / {CPUS}'),
        ("context.guest.cpu.iowait", "ratio", "lower",
         f'sum by (instance) (rate(node_cpu_seconds_total{{mode="iowait"}}{r})) / {CPUS}'),
        ("context.guest.load_per_cpu", "ratio", "lower",
         f"sum by (instance) (avg_over_time(node_load1{r})) / {CPUS}"),
        ("context.guest.memory.available", "ratio", "higher",
         f"min by (instance) (min_over_time(node_memory_MemAvailable_bytes{r}) / node_memory_MemTotal_bytes)"),
        ("context.guest.memory.major_faults", "1/s", "lower",
         f"sum by (instance) (rate(node_vmstat_pgmajfault{r}))"),
        ("context.guest.memory.swap", "pages/s", "lower",
         f"sum by (instance) (rate(node_vmstat_pswpin{r}) + rate(node_vmstat_pswpout{r}))"),
        ("context.guest.disk.latency", "ms", "lower",
         f"1000 * max by (instance) ((rate(node_disk_read_time_seconds_total{{{REAL_DISKS}}}{r})"
         f" + rate(node_disk_write_time_seconds_total{{{REAL_DISKS}}}{r}))"
         f" / ((rate(node_disk_reads_completed_total{{{REAL_DISKS}}}{r})"
         f" + rate(node_disk_writes_completed_total{{{REAL_DISKS}}}{r})) > 0))"),
    ]
    if namespace:
        ns = f'namespace="{namespace}"'
        out.append(("context.guest.pod.cpu_throttled", "ratio", "lower",
                    f"sum by (node) (rate(container_cpu_cfs_throttled_periods_total{{{ns}}}{r}))"
                    f" / (sum by (node) (rate(container_cpu_cfs_periods_total{{{ns}}}{r})) > 0)"))
    return out


def readings(query: QueryFn, start: float, end: float, namespace: str | None = None) -> list[Reading]:
    """Evaluate every condition over [start, end] (Unix seconds). Raises on the first failing query."""
    range_s = max(MIN_RANGE_S, math.ceil(end - start))
    out = []
    for metric, unit, better, promql in queries(range_s, namespace):
        for s in query(promql, end):
            labels = s.get("metric") or {}
            node = str(labels.get("instance") or labels.get("node") or "?")
            value = float(s["value"][1])
            if math.isfinite(value):
                out.append(Reading(metric, value, unit, node, better))
    return out


class GuestStats:
    """A window source over the cluster's Prometheus (same begin/sample/end shape as provision's StatsSource)."""

    name = "prometheus"

    def __init__(self, query: QueryFn, namespace: str | None = None):
        self.query = query
        self.namespace = namespace
        self.start = 0.0

    def begin(self) -> None:
        self.start = time.time()

    def sample(self) -> None:
        pass  # Prometheus scrapes the nodes itself

    def end(self) -> list[Reading]:
        return readings(self.query, self.start, time.time(), self.namespace)

    def close(self) -> None:
        pass
