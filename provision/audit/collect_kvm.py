"""Gather KvmVm/KvmHost through libvirt-python: the domains of a cluster and the host they share."""

from __future__ import annotations

import logging
import os
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import libvirt

from provision.audit import kvm
from provision.audit.inventory import VmInfo, match_machine, role_from_name
from provision.spec import Machine

log = logging.getLogger("okdbench.audit.kvm")


@dataclass
class KvmInventory:
    vms: list[kvm.KvmVm]
    host: kvm.KvmHost
    info: list[VmInfo]
    facts: dict  # hypervisor facts for run.json: libvirt/QEMU versions, host CPU model


def _version(n: int) -> str:
    return f"{n // 1_000_000}.{n // 1000 % 1000}.{n % 1000}"


def host_cpus(conn: libvirt.virConnect) -> int:
    try:
        return int(conn.getCPUMap(0)[2])  # online CPUs
    except libvirt.libvirtError:
        return int(conn.getInfo()[2])


def model_features(conn: libvirt.virConnect, arch: str, model: str) -> frozenset[str] | None:
    """All features of a named CPU model, expanded by libvirt itself (its cpu_map)."""
    try:
        xml = conn.baselineCPU([f"<cpu><arch>{arch}</arch><model>{model}</model></cpu>"],
                               libvirt.VIR_CONNECT_BASELINE_CPU_EXPAND_FEATURES)
    except libvirt.libvirtError as exc:
        log.debug("baselineCPU %s: %s", model, exc)
        return None
    root = ET.fromstring(xml)
    return frozenset(f.get("name", "") for f in root.findall("feature") if f.get("policy", "require") == "require")


def storage_map(conn: libvirt.virConnect) -> tuple[dict[str, str], dict[str, str]]:
    """(pool name -> pool type, volume path or pool target dir -> pool name)."""
    types: dict[str, str] = {}
    paths: dict[str, str] = {}
    for pool in conn.listAllStoragePools():
        root = ET.fromstring(pool.XMLDesc())
        name = pool.name()
        types[name] = root.get("type", "?")
        target = root.findtext("target/path")
        if target:
            paths[os.path.normpath(target)] = name
        if pool.isActive():
            for vol in pool.listAllVolumes():
                paths[vol.path()] = name
    return types, paths


def mount_fs_type(path: str, mounts: str) -> str | None:
    """The filesystem type holding path, from /proc/mounts text (longest mount point that contains it)."""
    best, fs = "", None
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, fs = point, parts[2]
    return fs


def pool_mounts(conn: libvirt.virConnect, uri: str, mounts_file: str = "/proc/mounts") -> dict[str, str]:
    """pool name -> filesystem type under its target path; only for a libvirtd on this machine."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.hostname not in (None, "", "localhost") or parsed.scheme.split("+")[0] not in ("qemu", "test"):
        return {}  # a remote host's mounts are not ours to read
    try:
        mounts = open(mounts_file).read()
    except OSError:
        return {}
    out = {}
    for pool in conn.listAllStoragePools():
        target = ET.fromstring(pool.XMLDesc()).findtext("target/path")
        fs = mount_fs_type(os.path.normpath(target), mounts) if target else None
        if fs:
            out[pool.name()] = fs
    return out


def _macs(root: ET.Element) -> list[str]:
    return [m.get("address", "") for m in root.findall("devices/interface/mac")]


def _disk_gib(conn: libvirt.virConnect, root: ET.Element) -> int | None:
    d = kvm.system_disk(root)
    src = d.find("source") if d is not None else None
    if src is None:
        return None
    try:
        if d.get("type") == "volume":
            vol = conn.storagePoolLookupByName(src.get("pool", "")).storageVolLookupByName(src.get("volume", ""))
        else:
            vol = conn.storageVolLookupByPath(src.get("file") or src.get("dev") or "")
        return -(-vol.info()[1] // 2**30)
    except libvirt.libvirtError:
        return None  # volume outside any pool, or pool inactive: size unknown, not an error


def _provisioning(root: ET.Element) -> str:
    d = kvm.system_disk(root)
    if d is None:
        return "unknown"
    fmt = kvm.driver(d).get("type", "")
    return "thin" if fmt == "qcow2" else ("thick" if d.get("type") == "block" else "unknown")


def select_domains(conn: libvirt.virConnect, cluster: str, machines: list[Machine],
                   names: list[str] | None = None) -> list[tuple[libvirt.virDomain, ET.Element, Machine | None]]:
    """The cluster's domains: the named ones, or those matching a spec machine by MAC or name."""
    out = []
    for dom in conn.listAllDomains():
        root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        m = match_machine(machines, cluster, dom.name(), _macs(root))
        if names is not None:
            if dom.name() in names:
                out.append((dom, root, m))
        elif m is not None:
            out.append((dom, root, m))
    return out


def collect(conn: libvirt.virConnect, cluster: str, machines: list[Machine], names: list[str] | None = None,
            roles: dict[str, str] | None = None) -> KvmInventory:
    """Audit inputs for the cluster's domains. roles overrides the role of a domain by name (tests, fixtures)."""
    roles = roles or {}
    chosen = select_domains(conn, cluster, machines, names)
    vms, info = [], []
    for dom, root, m in chosen:
        role = roles.get(dom.name()) or (m.role if m else role_from_name(dom.name()))
        vm = kvm.KvmVm(name=dom.name(), role=role, xml=root)
        vms.append(vm)
        info.append(VmInfo(name=dom.name(), machine=m.name if m else "", role=role, vcpu=kvm.vcpus(root),
                           memory_mib=kvm.memory_bytes(root) // 2**20, disk_gib=_disk_gib(conn, root),
                           disk=kvm.disk_summary(vm), provisioning=_provisioning(root),
                           uuid=root.findtext("uuid", default=""), ips=(str(m.ip),) if m else ()))
    # Running domains compete for the CPUs now; the audited ones will when (re)started.
    domain_vcpus = {d.name(): d.info()[3] for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}
    for vm in vms:
        domain_vcpus.setdefault(vm.name, kvm.vcpus(vm.xml))
    features = {}
    for vm in vms:
        cpu = vm.xml.find("cpu")
        model = cpu.findtext("model") if cpu is not None else None
        if model and model not in features:
            arch = (vm.xml.find("os/type").get("arch") if vm.xml.find("os/type") is not None else None) or "x86_64"
            found = model_features(conn, arch, model)
            if found is not None:
                features[model] = found
    pool_types, path_pools = storage_map(conn)
    host = kvm.KvmHost(cpus=host_cpus(conn), domain_vcpus=domain_vcpus, model_features=features,
                       pool_types=pool_types, path_pools=path_pools, pool_mounts=pool_mounts(conn, conn.getURI()))
    return KvmInventory(vms=vms, host=host, info=info, facts=hypervisor_facts(conn))


def hypervisor_facts(conn: libvirt.virConnect) -> dict:
    facts = {"libvirt": _version(conn.getLibVersion()), "driver": conn.getType(), "host_cpus": host_cpus(conn)}
    try:
        facts["hypervisor_version"] = _version(conn.getVersion())
    except libvirt.libvirtError:
        pass
    # No getCapabilities(): libvirtd may re-probe QEMU for it (seconds); provisioning records the CPU model.
    return facts


def open_connection(uri: str) -> libvirt.virConnect:
    """Read-only is enough to audit; the error is one line for the caller to show."""
    # libvirt's default handler prints every error to stderr, even those we handle (a missing volume).
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    try:
        return libvirt.openReadOnly(uri)
    except libvirt.libvirtError as exc:
        raise ConnectionError(f"cannot connect to libvirt at {uri}: {exc.get_error_message()}") from None
