"""vSphere run conditions from PerformanceManager: CPU ready/co-stop, swap, balloon, disk latency; host load.

Real-time statistics (intervalId 20: one sample per 20 s, kept about an hour on the ESXi host),
queried with QueryPerf over each window (VMware's "Performance counters" reference):
  cpu.ready.summation     ms per sample the VM was ready to run but had no physical CPU
  cpu.costop.summation    ms per sample a vCPU was stopped to let its siblings catch up (SMP co-scheduling)
  mem.swapped.average     KiB of guest memory swapped out by the host
  mem.swapinRate/swapoutRate.average  KiB/s swapped in/out
  mem.vmmemctl.average    KiB held by the balloon driver
  disk.maxTotalLatency.latest  ms, highest disk latency of the VM (host: of any datastore)
  cpu.usage.average (host) 1/100 % of the host's CPU capacity
Plus the host's powered-on VMs and their vCPUs against its logical CPUs.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from pyVmomi import vim

from provision.base import Reading, StatsSource
from provision.spec import ClusterSpec
from provision.vsphere import connect as vconnect
from provision.vsphere.inventory import vm_name, vms_named

log = logging.getLogger("okdbench.vsphere.stats")

INTERVAL_S = 20  # the real-time statistics interval
VM_COUNTERS = ("cpu.ready.summation", "cpu.costop.summation", "mem.swapped.average", "mem.swapinRate.average",
               "mem.swapoutRate.average", "mem.vmmemctl.average", "disk.maxTotalLatency.latest")
HOST_COUNTERS = ("cpu.usage.average",)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def vm_readings(node: str, series: dict[str, list[float]], vcpus: int, memory_mib: int, interval_s: int = INTERVAL_S) -> list[Reading]:
    """Readings of one VM from its counters' samples over the window. Pure.

    Ready and co-stop are summations (ms per sample): ready / (interval × 1000 × vCPUs) is the
    fraction of each vCPU's time spent waiting, VMware's "% ready" divided by the vCPU count.
    """
    out: list[Reading] = []
    per_vcpu_ms = interval_s * 1000.0 * max(1, vcpus)
    if (v := _mean(series.get("cpu.ready.summation", []))) is not None:
        out.append(Reading("context.hv.cpu.wait", v / per_vcpu_ms, "ratio", node))
    if (v := _mean(series.get("cpu.costop.summation", []))) is not None:
        out.append(Reading("context.hv.cpu.costop", v / per_vcpu_ms, "ratio", node))
    swap = [a + b for a, b in zip(series.get("mem.swapinRate.average", []), series.get("mem.swapoutRate.average", []))]
    if swap:
        out.append(Reading("context.hv.memory.swap", _mean(swap), "KiB/s", node))
    if series.get("mem.swapped.average"):
        out.append(Reading("context.hv.memory.swapped", max(series["mem.swapped.average"]) / 1024.0, "MiB", node))
    if series.get("mem.vmmemctl.average") and memory_mib:
        out.append(Reading("context.hv.memory.ballooned", max(series["mem.vmmemctl.average"]) / (memory_mib * 1024.0), "ratio", node))
    if (v := _mean(series.get("disk.maxTotalLatency.latest", []))) is not None:
        out.append(Reading("context.hv.disk.latency", v, "ms", node))
    return out


def host_readings(host: str, series: dict[str, list[float]], vms_on: int, ours: int, vcpus_on: int, other_vcpus: int,
                  threads: int) -> list[Reading]:
    node = f"host:{host}"
    out: list[Reading] = []
    if (v := _mean(series.get("cpu.usage.average", []))) is not None:
        out.append(Reading("context.host.cpu.busy", v / 10000.0, "ratio", node))
    if threads:
        out.append(Reading("context.host.vcpu_ratio", vcpus_on / threads, "vCPU/pCPU", node))
    out.append(Reading("context.host.other_vms", float(vms_on - ours), "count", node))
    out.append(Reading("context.host.other_vcpus", float(other_vcpus), "count", node))
    return out


class VsphereStats(StatsSource):
    name = "vsphere"

    def __init__(self, spec: ClusterSpec, insecure: bool):
        self.spec = spec
        self.insecure = insecure
        self.nodes = {vm_name(spec, m.name): m.name for m in spec.machines()}
        self.si = None
        self.start: datetime | None = None
        self._counters: dict[str, int] = {}

    def _connect(self):
        if self.si is None:
            self.si = vconnect.connect(self.spec, insecure=self.insecure)
            pm = self.si.content.perfManager
            self._counters = {f"{c.groupInfo.key}.{c.nameInfo.key}.{c.rollupType}": c.key for c in pm.perfCounter}
        return self.si

    def begin(self) -> None:
        self.start = self._connect().CurrentTime()

    def sample(self) -> None:
        pass  # vCenter keeps the 20 s samples itself: one query at the end of the window

    def _query(self, entities: list, names: tuple[str, ...], start: datetime, end: datetime) -> dict[str, dict[str, list[float]]]:
        pm = self.si.content.perfManager
        ids = [vim.PerformanceManager.MetricId(counterId=self._counters[n], instance="") for n in names if n in self._counters]
        by_id = {v: k for k, v in self._counters.items()}
        samples = int((end - start).total_seconds() // INTERVAL_S) + 2
        specs = [vim.PerformanceManager.QuerySpec(entity=e, metricId=ids, intervalId=INTERVAL_S, startTime=start, endTime=end,
                                                  maxSample=samples) for e in entities]
        out: dict[str, dict[str, list[float]]] = {}
        for res in pm.QueryPerf(querySpec=specs) if specs else []:
            series: dict[str, list[float]] = {}
            for s in res.value:
                if s.id.instance in ("", None):
                    series[by_id.get(s.id.counterId, "?")] = [float(x) for x in s.value if x >= 0]
            out[res.entity._moId] = series
        return out

    def end(self) -> list[Reading]:
        si = self._connect()
        end = si.CurrentTime()
        # A window shorter than one 20 s sample still gets the sample that covers its end.
        start = min(self.start or end, end - timedelta(seconds=INTERVAL_S))
        vms = vms_named(si, si.content.rootFolder, set(self.nodes))
        if not vms:
            raise LookupError(f"none of the node VMs ({', '.join(sorted(self.nodes))}) found in vCenter")
        hosts = {vm.runtime.host._moId: vm.runtime.host for vm in vms.values() if vm.runtime.host is not None}
        data = self._query([*vms.values(), *hosts.values()], tuple(dict.fromkeys(VM_COUNTERS + HOST_COUNTERS)), start, end)
        out: list[Reading] = []
        for name, vm in sorted(vms.items()):
            hw = vm.config.hardware
            out += vm_readings(self.nodes[name], data.get(vm._moId, {}), int(hw.numCPU), int(hw.memoryMB))
        for host in hosts.values():
            on = [v for v in host.vm if v.runtime.powerState == "poweredOn"]
            ours = [v for v in on if v.name in self.nodes]
            vcpus = sum(int(v.config.hardware.numCPU) for v in on if v.config)
            other = sum(int(v.config.hardware.numCPU) for v in on if v.config and v.name not in self.nodes)
            out += host_readings(host.name, data.get(host._moId, {}), len(on), len(ours), vcpus, other,
                                 int(host.summary.hardware.numCpuThreads))
        return out

    def close(self) -> None:
        if self.si is not None:
            from pyVim.connect import Disconnect

            try:
                Disconnect(self.si)
            except Exception:  # noqa: BLE001 - closing a session that may already be gone
                pass
            self.si = None


def open_stats(spec: ClusterSpec, *, insecure: bool = False) -> VsphereStats:
    """Conditions of the spec's node VMs (found by name) and their hosts, from the spec's vCenter."""
    return VsphereStats(spec, insecure)
