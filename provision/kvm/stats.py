"""KVM run conditions from libvirt: vCPU delay, balloon swap, block latency of the node VMs; host load.

Counters (libvirt `virConnectGetAllDomainStats`, cumulative, see libvirt's "domain stats" docs):
  vcpu.<n>.delay  ns the vCPU thread was enqueued by the host scheduler but waiting instead of running
                  (libvirt reads /proc/<pid>/task/<tid>/schedstat; "exposed to the VM as a steal time");
                  vcpu.<n>.wait, reported by some drivers, when delay is absent
  balloon.swap_in / balloon.swap_out  KiB the guest swapped (virtio balloon statistics)
  balloon.current / balloon.maximum   KiB the balloon left the guest / its configured memory
  block.<n>.rd|wr.reqs / .times       requests and ns spent on them: mean latency per request
Host side: virNodeGetCPUStats (kernel/user/idle/iowait ns), virNodeGetMemoryStats (KiB), virNodeGetInfo
(CPUs), and the vCPUs of every running domain on the host (ours and everyone else's).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from provision.base import Reading, StatsSource
from provision.kvm.render import domain_name, kvm_section
from provision.spec import ClusterSpec

log = logging.getLogger("okdbench.kvm.stats")


@dataclass
class Snapshot:
    t: float  # monotonic seconds
    domains: dict[str, dict]  # our domain name -> libvirt stats dict
    others: int  # running domains not ours
    other_vcpus: int
    all_vcpus: int
    host_cpus: int
    host_cpu: dict[str, int] = field(default_factory=dict)  # kernel/user/idle/iowait ns
    host_mem: dict[str, int] = field(default_factory=dict)  # total/free/buffers/cached KiB


def _vcpu_sum(stats: dict, key: str) -> float | None:
    n = int(stats.get("vcpu.maximum", stats.get("vcpu.current", 0)) or 0)
    values = [stats.get(f"vcpu.{i}.{key}") for i in range(n)]
    if not values or any(v is None for v in values):
        return None  # partial stats (domain starting or stopping): no sum to compare
    return float(sum(values))


def cpu_wait_key(stats: dict) -> str | None:
    """'delay' (run-queue wait, the guest's steal) when libvirt reports it, else 'wait'."""
    for key in ("delay", "wait"):
        if stats.get(f"vcpu.0.{key}") is not None:
            return key
    return None


def _block_sum(stats: dict, what: str) -> float | None:
    n = int(stats.get("block.count", 0) or 0)
    values = [stats.get(f"block.{i}.{op}.{what}") for i in range(n) for op in ("rd", "wr")]
    values = [v for v in values if v is not None]
    return float(sum(values)) if values else None


def _swap(stats: dict) -> float | None:
    if stats.get("balloon.swap_in") is None:
        return None  # no balloon statistics period set: the guest reports no swap counters
    return float(stats["balloon.swap_in"] + stats.get("balloon.swap_out", 0))


def counter_rate(snaps: list[Snapshot], value: Callable[[Snapshot], float | None]) -> tuple[float, float] | None:
    """(sum of increases, seconds covered) over consecutive snapshots; a counter that went
    backwards (domain restarted) contributes nothing for that interval."""
    total, seconds, seen = 0.0, 0.0, False
    for a, b in zip(snaps, snaps[1:]):
        va, vb = value(a), value(b)
        if va is None or vb is None or vb < va:
            continue
        total += vb - va
        seconds += b.t - a.t
        seen = True
    return (total, seconds) if seen and seconds > 0 else None


def window_readings(snaps: list[Snapshot], nodes: dict[str, str], host: str) -> list[Reading]:
    """Readings over one window from its snapshots (first at begin, last at end). Pure."""
    out: list[Reading] = []
    if len(snaps) < 2:
        return out
    for dom, node in sorted(nodes.items()):
        present = [s for s in snaps if dom in s.domains]
        if len(present) < 2:
            continue
        # A domain shutting down can report partial stats in its last snapshot: take what any snapshot had.
        key = next((k for s in reversed(present) if (k := cpu_wait_key(s.domains[dom]))), None)
        vcpus = max(int(s.domains[dom].get("vcpu.current", 0) or 0) for s in present)
        if key and vcpus:
            r = counter_rate(present, lambda s, k=key: _vcpu_sum(s.domains[dom], k))
            if r:
                out.append(Reading("context.hv.cpu.wait", r[0] / 1e9 / r[1] / vcpus, "ratio", node))
        # Balloon and block counters are in the full snapshots only (window start and end, see KvmStats).
        swapping = [s for s in present if _swap(s.domains[dom]) is not None]
        r = counter_rate(swapping, lambda s: _swap(s.domains[dom]))
        if r:
            out.append(Reading("context.hv.memory.swap", r[0] / r[1], "KiB/s", node))
        ballooned = [1.0 - s.domains[dom]["balloon.current"] / s.domains[dom]["balloon.maximum"]
                     for s in present if s.domains[dom].get("balloon.maximum") and s.domains[dom].get("balloon.current") is not None]
        if ballooned:
            out.append(Reading("context.hv.memory.ballooned", max(0.0, max(ballooned)), "ratio", node))
        blocks = [s for s in present if _block_sum(s.domains[dom], "reqs") is not None]
        reqs = counter_rate(blocks, lambda s: _block_sum(s.domains[dom], "reqs"))
        times = counter_rate(blocks, lambda s: _block_sum(s.domains[dom], "times"))
        if reqs and times and reqs[0] > 0:
            out.append(Reading("context.hv.disk.latency", times[0] / reqs[0] / 1e6, "ms", node))
    hnode = f"host:{host}"
    busy = counter_rate(snaps, lambda s: float(s.host_cpu.get("kernel", 0) + s.host_cpu.get("user", 0)) if s.host_cpu else None)
    total = counter_rate(snaps, lambda s: float(sum(s.host_cpu.get(k, 0) for k in ("kernel", "user", "idle", "iowait"))) if s.host_cpu else None)
    if busy and total and total[0] > 0:
        out.append(Reading("context.host.cpu.busy", busy[0] / total[0], "ratio", hnode))
    avail = [(s.host_mem.get("free", 0) + s.host_mem.get("buffers", 0) + s.host_mem.get("cached", 0)) / s.host_mem["total"]
             for s in snaps if s.host_mem.get("total")]
    if avail:
        out.append(Reading("context.host.memory.available", min(avail), "ratio", hnode, better="higher"))
    cpus = max(s.host_cpus for s in snaps)
    if cpus:
        out.append(Reading("context.host.vcpu_ratio", max(s.all_vcpus for s in snaps) / cpus, "vCPU/pCPU", hnode))
    out.append(Reading("context.host.other_vms", float(max(s.others for s in snaps)), "count", hnode))
    out.append(Reading("context.host.other_vcpus", float(max(s.other_vcpus for s in snaps)), "count", hnode))
    return out


class KvmStats(StatsSource):
    name = "libvirt"

    def __init__(self, uri: str, nodes: dict[str, str]):
        self.uri = uri
        self.nodes = nodes  # libvirt domain name -> spec machine name
        self.conn = None
        self.host = "?"
        self.snaps: list[Snapshot] = []

    def _connect(self):
        import libvirt

        libvirt.registerErrorHandler(lambda ctx, err: None, None)  # errors surface as exceptions, not stderr noise
        if self.conn is None:
            try:
                self.conn = libvirt.openReadOnly(self.uri)
            except libvirt.libvirtError as exc:
                raise ConnectionError(f"cannot reach libvirt at {self.uri} ({str(exc).splitlines()[0]})") from None
            self.host = self.conn.getHostname()
        return self.conn

    def snapshot(self, full: bool = True) -> Snapshot:
        """full: with balloon and block stats, which libvirt asks each QEMU for over QMP; the samples in
        between read only what libvirt has itself (vCPU threads' schedstat, host counters)."""
        import libvirt

        conn = self._connect()
        groups = libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU
        if full:
            groups |= libvirt.VIR_DOMAIN_STATS_BALLOON | libvirt.VIR_DOMAIN_STATS_BLOCK
        t = time.monotonic()
        records = conn.getAllDomainStats(groups, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE)
        ours, others, other_vcpus, all_vcpus = {}, 0, 0, 0
        for dom, stats in records:
            vcpus = int(stats.get("vcpu.current", 0) or 0)
            all_vcpus += vcpus
            if dom.name() in self.nodes:
                ours[dom.name()] = stats
            else:
                others += 1
                other_vcpus += vcpus
        try:
            host_cpu = dict(conn.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS, 0))
        except libvirt.libvirtError:
            host_cpu = {}
        try:
            host_mem = dict(conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0))
        except libvirt.libvirtError:
            host_mem = {}
        return Snapshot(t, ours, others, other_vcpus, all_vcpus, int(conn.getInfo()[2]), host_cpu, host_mem)

    def begin(self) -> None:
        self.snaps = [self.snapshot()]
        missing = sorted(set(self.nodes) - set(self.snaps[0].domains))
        if len(missing) == len(self.nodes):
            log.info("conditions: none of the node VMs (%s) is running on %s yet", ", ".join(missing), self.uri)

    def sample(self) -> None:
        self.snaps.append(self.snapshot(full=False))

    def end(self) -> list[Reading]:
        self.snaps.append(self.snapshot())
        snaps, self.snaps = self.snaps, []
        return window_readings(snaps, self.nodes, self.host)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None


def open_stats(spec: ClusterSpec, *, insecure: bool = False) -> KvmStats:
    """Conditions of the spec's node VMs (found by their domain names) on the spec's libvirt URI."""
    return KvmStats(kvm_section(spec).uri, {domain_name(spec, m): m.name for m in spec.machines()})
