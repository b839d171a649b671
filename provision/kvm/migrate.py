"""Live-migrate one KVM node VM to another libvirt host (peer-to-peer), bounded by lack of progress.

The source libvirtd drives the migration itself (VIR_MIGRATE_PEER2PEER): okdbench only needs a
connection to the source, the destination is named by its libvirt URI (e.g.
qemu+tcp://198.18.0.2/system or qemu+ssh://kvm2/system) and, optionally, the address the memory
stream should use (tcp://198.18.0.2). While the job runs its statistics are polled: the
migration is aborted when no more data moved for `stall_s`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from provision.kvm.libvirtd import _quiet_libvirt
from provision.kvm.power import PowerError, _text, domain
from provision.spec import ClusterSpec

log = logging.getLogger("okdbench.kvm.migrate")

STALL_S = 60.0
POLL_S = 0.2
PROGRESS_EVERY_S = 10.0


@dataclass
class MigrationResult:
    vm: str
    dest: str
    duration_s: float
    downtime_ms: float | None = None  # the hypervisor's own figure, when the destination reports it
    data_mib: float | None = None


def migration_flags(libvirt) -> int:
    """Live, peer-to-peer, the destination keeps the definition, the source forgets it."""
    return (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_PERSIST_DEST
            | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE | libvirt.VIR_MIGRATE_ABORT_ON_ERROR)


def migration_params(libvirt, *, data_uri: str | None = None, bandwidth_mib_s: int | None = None,
                     max_downtime_ms: int | None = None) -> dict:
    """virDomainMigrateToURI3's typed parameters (only those given)."""
    params: dict = {}
    if data_uri:
        params[libvirt.VIR_MIGRATE_PARAM_URI] = data_uri
    if bandwidth_mib_s:
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = int(bandwidth_mib_s)
    if max_downtime_ms is not None and hasattr(libvirt, "VIR_MIGRATE_PARAM_DOWNTIME_LIMIT"):  # libvirt >= 11.0
        params[libvirt.VIR_MIGRATE_PARAM_DOWNTIME_LIMIT] = int(max_downtime_ms)
    return params


def _processed(stats: dict) -> int:
    return int(stats.get("data_processed") or stats.get("memory_processed") or 0)


def migrate(spec: ClusterSpec, vm: str, dest: str, *, data_uri: str | None = None,
            bandwidth_mib_s: int | None = None, stall_s: float = STALL_S,
            dest_stats_uri: str | None = None) -> MigrationResult:
    """Move `vm` to the libvirt host `dest` while it runs; the VM keeps running there.

    dest is the URI the *source libvirtd* uses; dest_stats_uri (default: dest) is how okdbench
    itself reaches the destination afterwards to read the finished job's downtime.
    """
    libvirt = _quiet_libvirt()
    phase = f"live migration to {dest}"
    with domain(spec, vm, phase) as dom:
        params = migration_params(libvirt, data_uri=data_uri, bandwidth_mib_s=bandwidth_mib_s)
        flags = migration_flags(libvirt)
        outcome: dict = {}

        def run() -> None:
            try:
                dom.migrateToURI3(dest, params, flags)
            except libvirt.libvirtError as exc:
                outcome["error"] = _text(exc)
            except BaseException as exc:  # reported by the waiting thread
                outcome["error"] = f"{type(exc).__name__}: {exc}"

        start = time.monotonic()
        worker = threading.Thread(target=run, daemon=True, name=f"migrate {vm}")
        worker.start()
        last_bytes, last_change, last_log = -1, start, start
        aborted = False
        while worker.is_alive():
            worker.join(POLL_S)
            if not worker.is_alive():
                break
            try:
                stats = dom.jobStats(0)
            except libvirt.libvirtError:
                stats = {}
            now = time.monotonic()
            done = _processed(stats)
            if done != last_bytes:
                last_bytes, last_change = done, now
            if now - last_log >= PROGRESS_EVERY_S:
                last_log = now
                log.info("kvm %s of %s: %.0f MiB sent, %.0f MiB remaining, %.0f s elapsed", phase, vm, done / 2**20,
                         (stats.get("data_remaining") or 0) / 2**20, now - start)
            if now - last_change > stall_s and not aborted:
                aborted = True
                try:
                    dom.abortJob()
                except libvirt.libvirtError:
                    pass
        duration = time.monotonic() - start
        if aborted:
            raise PowerError(f"kvm {phase} of {vm}: no data moved for {stall_s:.0f} s after {duration:.0f} s; "
                             "aborted, the VM keeps running on the source")
        if "error" in outcome:
            raise PowerError(f"kvm {phase} of {vm}: {outcome['error']}")
    result = MigrationResult(vm=vm, dest=dest, duration_s=duration,
                             data_mib=last_bytes / 2**20 if last_bytes > 0 else None)
    _completed_stats(dest_stats_uri or dest, vm, result)
    log.info("kvm %s of %s: done in %.1f s (downtime %s ms)", phase, vm, duration, result.downtime_ms)
    return result


def _completed_stats(dest: str, vm: str, result: MigrationResult) -> None:
    """The destination's record of the finished job: QEMU's measured downtime (best effort)."""
    libvirt = _quiet_libvirt()
    try:
        conn = libvirt.open(dest)
    except libvirt.libvirtError:
        return
    try:
        stats = conn.lookupByName(vm).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        if stats.get("downtime") is not None:
            result.downtime_ms = float(stats["downtime"])
        if stats.get("data_processed"):
            result.data_mib = stats["data_processed"] / 2**20
    except libvirt.libvirtError:
        pass
    finally:
        conn.close()
