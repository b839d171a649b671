"""KVM audit rules: pure functions over a libvirt domain XML (as libvirt returns it) and host facts.

Nothing here talks to libvirt; collect_kvm.py gathers KvmVm/KvmHost. Each rule function takes
(vm, host) and returns the Findings of one rule id, so a rule is added or removed in one place.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable

from provision.audit.rules import Finding

# x86-64-v2 in libvirt's feature names (pni = SSE3). lahf_lm is LAHF/SAHF in 64-bit mode.
X86_64_V2 = frozenset({"cx16", "lahf_lm", "popcnt", "pni", "sse4.1", "sse4.2", "ssse3"})
# CPU modes that expose the host's features (or all QEMU can emulate, for TCG).
PASSTHROUGH_MODES = {"host-passthrough", "host-model", "maximum"}
# Where a disk's data crosses the network: libvirt pool types and network disk protocols.
NETWORK_POOL_TYPES = {"netfs", "iscsi", "iscsi-direct", "rbd", "gluster", "sheepdog", "vstorage"}
# Filesystems a 'dir' pool's target may be mounted from (the most common hidden case: a dir pool on NFS).
NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "glusterfs", "ceph", "fuse.glusterfs", "fuse.sshfs", "fuse.cephfs",
                       "9p", "virtiofs", "lustre", "gpfs", "ocfs2", "gfs2"}
EMULATED_BUSES = {"ide", "sata", "usb", "fdc"}
CONTROL_PLANE_ROLES = {"master", "bootstrap"}
DEFAULT_OVERCOMMIT = {"control-plane": 1.5, "other": 4.0}

_MEM_UNITS = {"b": 1, "bytes": 1, "k": 2**10, "kib": 2**10, "kb": 10**3, "m": 2**20, "mib": 2**20, "mb": 10**6,
              "g": 2**30, "gib": 2**30, "gb": 10**9, "t": 2**40, "tib": 2**40, "tb": 10**12}


@dataclass(frozen=True)
class KvmVm:
    """One domain to audit. role is the node role from the spec (master, worker, bootstrap)."""

    name: str
    role: str
    xml: ET.Element
    node: str = ""

    @classmethod
    def from_xml(cls, text: str, role: str, node: str = "") -> "KvmVm":
        root = ET.fromstring(text)
        return cls(name=root.findtext("name", default="?"), role=role, xml=root, node=node)


@dataclass(frozen=True)
class KvmHost:
    """What the overcommit and storage rules need to know about the host."""

    cpus: int  # online physical CPUs (threads)
    domain_vcpus: dict[str, int] = field(default_factory=dict)  # domains that compete for those CPUs
    model_features: dict[str, frozenset[str]] = field(default_factory=dict)  # custom CPU model -> features
    pool_types: dict[str, str] = field(default_factory=dict)  # pool name -> libvirt pool type
    path_pools: dict[str, str] = field(default_factory=dict)  # volume/target path -> pool name
    pool_mounts: dict[str, str] = field(default_factory=dict)  # pool name -> filesystem type of its target (local hosts)
    overcommit: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_OVERCOMMIT))


# ---------------------------------------------------------------------------- XML helpers

def vcpus(root: ET.Element) -> int:
    el = root.find("vcpu")
    if el is None:
        return 1
    return int(el.get("current") or el.text or 1)


def memory_bytes(root: ET.Element) -> int:
    el = root.find("memory")
    if el is None or not (el.text or "").strip():
        return 0
    return int(el.text) * _MEM_UNITS.get(el.get("unit", "KiB").lower(), 2**10)


def disks(root: ET.Element) -> list[ET.Element]:
    """Writable block devices: what the guest's filesystems (and etcd) live on."""
    return [
        d for d in root.findall("devices/disk")
        if d.get("device", "disk") in ("disk", "lun") and d.find("readonly") is None
    ]


def system_disk(root: ET.Element) -> ET.Element | None:
    ds = disks(root)
    for d in ds:
        boot = d.find("boot")
        if boot is not None and boot.get("order") == "1":
            return d
    return ds[0] if ds else None


def _dev(disk: ET.Element) -> str:
    t = disk.find("target")
    return t.get("dev", "?") if t is not None else "?"


def _bus(disk: ET.Element) -> str:
    t = disk.find("target")
    return (t.get("bus") if t is not None else None) or "?"


def driver(el: ET.Element) -> ET.Element:
    return el.find("driver") if el.find("driver") is not None else ET.Element("driver")


def _controller(root: ET.Element, disk: ET.Element, ctype: str) -> ET.Element | None:
    addr = disk.find("address")
    index = addr.get("controller", "0") if addr is not None else "0"
    for c in root.findall("devices/controller"):
        if c.get("type") == ctype and c.get("index", "0") == index:
            return c
    return None


# ---------------------------------------------------------------------------- rules

def check_cpu_model(vm: KvmVm, host: KvmHost) -> list[Finding]:
    cpu = vm.xml.find("cpu")
    mode = (cpu.get("mode") or "custom") if cpu is not None else None
    if mode in PASSTHROUGH_MODES:
        return []
    model = cpu.findtext("model") if cpu is not None else None
    if not model:
        return [Finding("kvm.cpu-model", vm.name, "no CPU model: hypervisor default qemu64/kvm64 (no x86-64-v2)", vm.role, vm.node)]
    features = host.model_features.get(model)
    if features is None:
        return [Finding("kvm.cpu-model", vm.name, f"custom model {model!r} unknown to libvirt: x86-64-v2 not verifiable", vm.role, vm.node)]
    features = set(features)
    for f in cpu.findall("feature"):
        if f.get("policy", "require") in ("require", "force", "optional"):
            features.add(f.get("name", ""))
        else:
            features.discard(f.get("name", ""))
    missing = sorted(X86_64_V2 - features)
    if missing:
        return [Finding("kvm.cpu-model", vm.name, f"custom model {model!r} lacks {', '.join(missing)} (x86-64-v2)", vm.role, vm.node)]
    return []


def check_disk_bus(vm: KvmVm, host: KvmHost) -> list[Finding]:
    out = []
    for d in disks(vm.xml):
        bus = _bus(d)
        if bus in EMULATED_BUSES:
            out.append(Finding("kvm.disk-bus", vm.name, f"bus={bus}", vm.role, vm.node, _dev(d)))
        elif bus == "scsi":
            ctrl = _controller(vm.xml, d, "scsi")
            model = ctrl.get("model") if ctrl is not None else None
            if not (model or "").startswith("virtio"):
                out.append(Finding("kvm.disk-bus", vm.name, f"bus=scsi on controller model={model or 'default (lsilogic)'}",
                                   vm.role, vm.node, _dev(d)))
    return out


def check_disk_cache(vm: KvmVm, host: KvmHost) -> list[Finding]:
    out = []
    for d in disks(vm.xml):
        cache = driver(d).get("cache")
        if cache == "none":
            continue
        if cache == "unsafe":
            observed = "cache=unsafe: flushes are ignored, a host crash loses data etcd believes written"
        else:
            observed = f"cache={cache or 'default (writeback)'}"
        out.append(Finding("kvm.disk-cache", vm.name, observed, vm.role, vm.node, _dev(d)))
    return out


def check_disk_io(vm: KvmVm, host: KvmHost) -> list[Finding]:
    out = []
    for d in disks(vm.xml):
        io = driver(d).get("io")
        if io not in ("native", "io_uring"):
            out.append(Finding("kvm.disk-io", vm.name, f"io={io or 'default (threads)'}", vm.role, vm.node, _dev(d)))
    return out


def check_disk_iothread(vm: KvmVm, host: KvmHost) -> list[Finding]:
    d = system_disk(vm.xml)
    if d is None:
        return []
    if int(vm.xml.findtext("iothreads", default="0") or 0) < 1:
        return [Finding("kvm.disk-iothread", vm.name, "domain has no <iothreads>", vm.role, vm.node, _dev(d))]
    # virtio-blk names its iothread on the disk; virtio-scsi on the controller.
    holder = _controller(vm.xml, d, "scsi") if _bus(d) == "scsi" else d
    drv = driver(holder) if holder is not None else ET.Element("driver")
    if drv.get("iothread") or drv.find("iothreads/iothread") is not None:
        return []
    return [Finding("kvm.disk-iothread", vm.name, f"system disk (bus={_bus(d)}) not bound to an iothread", vm.role, vm.node, _dev(d))]


def _nic_name(iface: ET.Element, i: int) -> str:
    mac = iface.find("mac")
    return mac.get("address", f"nic{i}") if mac is not None else f"nic{i}"


def _nics(vm: KvmVm) -> list[tuple[str, ET.Element, str | None]]:
    out = []
    for i, iface in enumerate(vm.xml.findall("devices/interface")):
        if iface.get("type") in ("hostdev", "vdpa"):
            continue  # passthrough / vDPA: no emulation in the data path
        model = iface.find("model")
        out.append((_nic_name(iface, i), iface, model.get("type") if model is not None else None))
    return out


def check_nic_model(vm: KvmVm, host: KvmHost) -> list[Finding]:
    return [
        Finding("kvm.nic-model", vm.name, f"model={model or 'none (libvirt default: rtl8139/e1000e)'}", vm.role, vm.node, name)
        for name, _, model in _nics(vm)
        if model != "virtio"
    ]


def check_nic_multiqueue(vm: KvmVm, host: KvmHost) -> list[Finding]:
    n = vcpus(vm.xml)
    if n < 2:
        return []
    out = []
    for name, iface, model in _nics(vm):
        if model != "virtio":
            continue  # kvm.nic-model already says what to do
        queues = int(driver(iface).get("queues") or 1)
        if queues < 2:
            out.append(Finding("kvm.nic-multiqueue", vm.name, f"queues={queues} with {n} vCPUs", vm.role, vm.node, name))
    return out


def check_memballoon(vm: KvmVm, host: KvmHost) -> list[Finding]:
    mb = vm.xml.find("devices/memballoon")
    if mb is None:
        return [Finding("kvm.memballoon", vm.name, "no <memballoon>: libvirt adds a virtio balloon", vm.role, vm.node)]
    if mb.get("model") != "none":
        return [Finding("kvm.memballoon", vm.name, f"memballoon model={mb.get('model')}", vm.role, vm.node)]
    return []


def check_vcpu_overcommit(vm: KvmVm, host: KvmHost) -> list[Finding]:
    if host.cpus <= 0:
        return []
    counted = dict(host.domain_vcpus)
    counted.setdefault(vm.name, vcpus(vm.xml))
    total = sum(counted.values())
    ratio = total / host.cpus
    key = "control-plane" if vm.role in CONTROL_PLANE_ROLES else "other"
    limit = host.overcommit[key]
    if ratio <= limit:
        return []
    return [Finding("kvm.vcpu-overcommit", vm.name,
                    f"{total} vCPUs in {len(counted)} domains on {host.cpus} host CPUs = {ratio:.2f}:1 (limit {limit:g}:1 for {key})",
                    vm.role, vm.node)]


def _disk_storage(d: ET.Element, host: KvmHost) -> str | None:
    """The network storage a disk lives on (e.g. 'pool nfs (netfs)'), or None when local/unknown."""
    src = d.find("source")
    dtype = d.get("type", "file")
    if dtype == "network":
        return f"network disk protocol={src.get('protocol') if src is not None else '?'}"
    if src is None:
        return None
    if dtype == "volume":
        pool = src.get("pool")
    else:
        path = os.path.normpath(src.get("file") or src.get("dev") or "/")
        pool = host.path_pools.get(path) or host.path_pools.get(os.path.dirname(path))
    ptype = host.pool_types.get(pool or "")
    if ptype in NETWORK_POOL_TYPES:
        return f"pool {pool} ({ptype})"
    fs = host.pool_mounts.get(pool or "")
    if fs in NETWORK_FILESYSTEMS:
        return f"pool {pool} ({ptype} on a {fs} mount)"
    return None


def check_etcd_network_storage(vm: KvmVm, host: KvmHost) -> list[Finding]:
    if vm.role not in CONTROL_PLANE_ROLES - {"bootstrap"}:
        return []
    out = []
    for d in disks(vm.xml):
        where = _disk_storage(d, host)
        if where:
            out.append(Finding("kvm.etcd-network-storage", vm.name, where, vm.role, vm.node, _dev(d)))
    return out


RULE_FUNCTIONS: dict[str, Callable[[KvmVm, KvmHost], list[Finding]]] = {
    "kvm.cpu-model": check_cpu_model,
    "kvm.disk-bus": check_disk_bus,
    "kvm.disk-cache": check_disk_cache,
    "kvm.disk-io": check_disk_io,
    "kvm.disk-iothread": check_disk_iothread,
    "kvm.nic-model": check_nic_model,
    "kvm.nic-multiqueue": check_nic_multiqueue,
    "kvm.memballoon": check_memballoon,
    "kvm.vcpu-overcommit": check_vcpu_overcommit,
    "kvm.etcd-network-storage": check_etcd_network_storage,
}


def audit_kvm(vms: list[KvmVm], host: KvmHost) -> list[Finding]:
    return [f for vm in vms for check in RULE_FUNCTIONS.values() for f in check(vm, host)]


def disk_summary(vm: KvmVm) -> str:
    """A short description of the system disk for the comparison table, e.g. 'virtio qcow2 cache=none io=native'."""
    d = system_disk(vm.xml)
    if d is None:
        return "none"
    drv = driver(d)
    return f"{_bus(d)} {drv.get('type', '?')} cache={drv.get('cache', 'default')} io={drv.get('io', 'default')}"
