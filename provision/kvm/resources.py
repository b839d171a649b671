"""libvirt operations for a KVM cluster: preflight, create (with rollback), destroy by ownership.

Ownership: every domain and the network carry
    <metadata><okdbench:cluster xmlns:okdbench="https://okdbench.dev/xmlns/1" name="<cluster>" .../></metadata>
and the network's element lists the volumes provisioning will create (the ledger). Preflight refuses
to start when any of those names already exists, so whatever the ledger lists was created by us:
destroy removes exactly that, and nothing that merely looks similar.
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from plumbing.errors import UserError
from provision.kvm.render import XMLNS, domain_name, kvm_section, net_plan, volume_name
from provision.kvm.libvirtd import _quiet_libvirt
from provision.spec import ClusterSpec

log = logging.getLogger(__name__)


class KvmError(UserError):
    """libvirt refused or is unusable. One line naming the spec field and the fix."""


def _msg(exc) -> str:
    text = exc.get_error_message() if hasattr(exc, "get_error_message") else str(exc)
    return " ".join(str(text).split())


@contextmanager
def connect(spec: ClusterSpec) -> Iterator:
    libvirt = _quiet_libvirt()
    uri = kvm_section(spec).uri
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise KvmError(f"kvm.uri: cannot reach libvirt at {uri} ({_msg(exc)}); start libvirtd "
                       "(systemctl start libvirtd) or fix kvm.uri") from None
    try:
        yield conn
    except libvirt.libvirtError as exc:
        raise KvmError(f"kvm: libvirt at {uri} refused: {_msg(exc)}") from None
    finally:
        conn.close()


# ------------------------------------------------------------------ ownership


def owner_of(xml_desc: str) -> dict[str, str] | None:
    """The okdbench metadata element's attributes (+ ledger volumes), or None when not ours."""
    root = ET.fromstring(xml_desc)
    meta = root.find("metadata")
    if meta is None:
        return None
    el = meta.find(f"{{{XMLNS}}}cluster")
    if el is None:
        return None
    info = dict(el.attrib)
    info["volumes"] = ",".join(v.get("name", "") for v in el.findall(f"{{{XMLNS}}}volume"))
    return info


def with_ledger(network_xml: str, volumes: list[str]) -> str:
    """Network XML with the planned volume names recorded inside its okdbench metadata element."""
    ET.register_namespace("okdbench", XMLNS)
    ET.register_namespace("dnsmasq", "http://libvirt.org/schemas/network/dnsmasq/1.0")
    root = ET.fromstring(network_xml)
    el = root.find("metadata").find(f"{{{XMLNS}}}cluster")
    for v in volumes:
        ET.SubElement(el, f"{{{XMLNS}}}volume", {"name": v})
    return ET.tostring(root, encoding="unicode")


def _owned_domains(conn, cluster: str) -> list:
    libvirt = _quiet_libvirt()
    out = []
    for dom in conn.listAllDomains(0):
        try:
            info = owner_of(dom.XMLDesc(0))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                continue  # undefined by someone else since the listing: nothing of ours to remove
            raise
        if info and info.get("name") == cluster:
            out.append(dom)
    return out


def _lookup(fn, name):
    libvirt = _quiet_libvirt()
    try:
        return fn(name)
    except libvirt.libvirtError:
        return None


# ------------------------------------------------------------------ preflight


@dataclass
class Plan:
    pool: object
    base_path: str | None
    base_format: str
    network_name: str
    volumes: list[str]
    domains: list[str]


def preflight(conn, spec: ClusterSpec) -> Plan:
    """Check everything that can be checked before creating anything; one clear line per problem."""
    kvm = kvm_section(spec)
    machines = spec.machines()
    pool = _lookup(conn.storagePoolLookupByName, kvm.storage_pool)
    if pool is None:
        raise KvmError(f"kvm.storage_pool: pool '{kvm.storage_pool}' does not exist on {kvm.uri}; create it "
                       f"(virsh pool-define-as {kvm.storage_pool} dir --target /var/lib/libvirt/images && "
                       f"virsh pool-start {kvm.storage_pool}) or name an existing pool")
    if not pool.isActive():
        raise KvmError(f"kvm.storage_pool: pool '{kvm.storage_pool}' is not active; virsh pool-start {kvm.storage_pool}")
    pool.refresh(0)

    base_path, base_format = None, "qcow2"
    if spec.okd.guest == "fcos":
        if not kvm.base_image:
            raise KvmError("kvm.base_image: not set; name the Fedora CoreOS qcow2 volume in the pool (or its path)")
        vol = _lookup(pool.storageVolLookupByName, kvm.base_image)
        if vol is None and kvm.base_image.startswith("/"):
            vol = _lookup(conn.storageVolLookupByPath, kvm.base_image)
        if vol is None:
            raise KvmError(f"kvm.base_image: '{kvm.base_image}' is not a volume in pool '{kvm.storage_pool}'; "
                           "upload the FCOS qcow2 there (virsh vol-upload) or give its path in a pool")
        base_path = vol.path()
        fmt = ET.fromstring(vol.XMLDesc(0)).find("target/format")
        base_format = fmt.get("type") if fmt is not None else "qcow2"
    else:
        for field_name in ("kernel", "initrd"):
            p = getattr(kvm, field_name)
            if not p or not Path(p).is_file():
                raise KvmError(f"kvm.{field_name}: {p or '(unset)'} is not a file; build the test guest "
                               "(provision.kvm.testguest.build_test_guest) and point kvm.kernel/kvm.initrd at it")

    net_name = net_plan(spec).name
    net = _lookup(conn.networkLookupByName, net_name)
    if net is not None:
        info = owner_of(net.XMLDesc(0))
        if info and info.get("name") == spec.name:
            raise KvmError(f"cluster {spec.name} is already provisioned on {kvm.uri} (network {net_name} exists); "
                           "run `okdbench destroy` first")
        raise KvmError(f"kvm.network.name: network '{net_name}' already exists and is not okdbench's; "
                       "set kvm.network.name to another name or rename the cluster")
    domains = [domain_name(spec, m) for m in machines]
    for name in domains:
        dom = _lookup(conn.lookupByName, name)
        if dom is not None:
            info = owner_of(dom.XMLDesc(0))
            whose = f"belongs to okdbench cluster {info['name']}" if info else "is not okdbench's"
            raise KvmError(f"name: domain '{name}' already exists on {kvm.uri} and {whose}; rename the cluster "
                           "or remove that domain")
    volumes = [volume_name(spec, m) for m in machines]
    for v in volumes:
        if _lookup(pool.storageVolLookupByName, v) is not None:
            raise KvmError(f"name: volume '{v}' already exists in pool '{kvm.storage_pool}'; rename the cluster "
                           "or delete that volume")
    return Plan(pool=pool, base_path=base_path, base_format=base_format, network_name=net_name,
                volumes=volumes, domains=domains)


# ------------------------------------------------------------------ create with rollback


# A restarting libvirtd is usually back within a few seconds; the rollback waits this long for it
# before it gives up and tells the user to run destroy.
ROLLBACK_RECONNECT_S = 10.0
_RECONNECT_PAUSE_S = 0.5


@dataclass
class Created:
    """Every create call issued, in order, as (kind, name). A call that raised may still have taken
    effect (libvirtd applied it, the reply was lost), so rollback checks each name, not handles."""

    issued: list[tuple[str, str]] = field(default_factory=list)
    confirmed: set[tuple[str, str]] = field(default_factory=set)
    domains: list = field(default_factory=list)

    def issue(self, kind: str, name: str, call):
        self.issued.append((kind, name))
        obj = call()
        self.confirmed.add((kind, name))
        return obj


def _remove_domain(conn, spec: ClusterSpec, name: str) -> None:
    libvirt = _quiet_libvirt()
    dom = conn.lookupByName(name)
    info = owner_of(dom.XMLDesc(0))
    if not info or info.get("name") != spec.name:
        return  # someone else's since; preflight saw no such domain
    _stop(dom)
    dom.undefineFlags(getattr(libvirt, "VIR_DOMAIN_UNDEFINE_NVRAM", 0))


def _remove_volume(conn, spec: ClusterSpec, name: str) -> None:
    # No ownership mark on a volume: preflight refused to start if the name existed, so it is ours.
    conn.storagePoolLookupByName(kvm_section(spec).storage_pool).storageVolLookupByName(name).delete(0)


def _remove_network(conn, spec: ClusterSpec, name: str) -> None:
    net = conn.networkLookupByName(name)
    info = owner_of(net.XMLDesc(0))
    if not info or info.get("name") != spec.name:
        return
    _stop(net)
    net.undefine()


_REMOVERS = {"domain": _remove_domain, "volume": _remove_volume, "network": _remove_network}
_ORDER = {"domain": 0, "volume": 1, "network": 2}  # domains use the volumes and the network


def _remove_issued(conn, spec: ClusterSpec, pending: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], str | None]:
    """Remove each pending item by name on conn; returns (items still there or unknown, first error)."""
    libvirt = _quiet_libvirt()
    gone_codes = {libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_NO_NETWORK,
                  libvirt.VIR_ERR_NO_STORAGE_POOL}
    left: list[tuple[str, str]] = []
    error = None
    for kind, name in pending:
        try:
            _REMOVERS[kind](conn, spec, name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in gone_codes:
                continue  # never created (the call that failed) or already removed
            left.append((kind, name))
            error = error or _msg(exc)
    return left, error


def rollback(conn, spec: ClusterSpec, created: Created) -> tuple[list[tuple[str, str]], str | None]:
    """Remove everything create() issued. When the connection died (libvirtd restarted), wait up to
    ROLLBACK_RECONNECT_S for a fresh connection and remove the rest with it.

    Returns (items that may still exist, why) -- empty when everything is gone.
    """
    libvirt = _quiet_libvirt()
    pending = sorted(dict.fromkeys(reversed(created.issued)), key=lambda item: _ORDER[item[0]])
    left, error = _remove_issued(conn, spec, pending)
    if not left:
        return [], None
    uri = kvm_section(spec).uri
    log.warning("kvm: rollback of %s: %d item(s) not removed (%s); reconnecting to %s for up to %.0f s",
                spec.name, len(left), error, uri, ROLLBACK_RECONNECT_S)
    t0 = time.monotonic()
    stalled = None
    while left and time.monotonic() - t0 < ROLLBACK_RECONNECT_S:
        time.sleep(_RECONNECT_PAUSE_S)
        try:
            fresh = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            error = f"cannot reconnect: {_msg(exc)}"
            continue
        try:
            before = left
            left, error = _remove_issued(fresh, spec, left)
        finally:
            try:
                fresh.close()
            except libvirt.libvirtError:
                pass
        if left == before:
            # A live connection that still cannot remove them: waiting longer will not help.
            if stalled == left:
                break
            stalled = left
        log.info("kvm: rollback of %s: %d item(s) left after %.1f s", spec.name, len(left), time.monotonic() - t0)
    return left, error


def _describe(left: list[tuple[str, str]], created: Created) -> str:
    parts = []
    for kind in ("domain", "volume", "network"):
        names = [n if (k, n) in created.confirmed else f"{n} (if its creation took effect)"
                 for k, n in sorted(left) if k == kind]
        if names:
            parts.append(f"{kind} {names[0]}" if len(names) == 1 else f"{len(names)} {kind}s {', '.join(names)}")
    return "; ".join(parts)


def _rollback_failed(spec: ClusterSpec, created: Created, left: list[tuple[str, str]], why: str | None) -> str:
    where = spec.source if spec.source is not None else "<your spec file>"
    return (f"rollback could not remove {_describe(left, created)} ({why}); once libvirt at "
            f"{kvm_section(spec).uri} answers again, run `okdbench destroy --spec {where}`")


def create(conn, spec: ClusterSpec, plan: Plan, network_xml: str, volume_xmls: list[str],
           domain_xmls: list[str]) -> tuple[list, float]:
    """Network, volumes, domains; start domains in parallel. Rolls back everything on failure.

    Returns (domains, seconds from first create call until every domain is running).
    """
    libvirt = _quiet_libvirt()
    created = Created()
    t0 = time.monotonic()
    try:
        net = created.issue("network", plan.network_name,
                            lambda: conn.networkDefineXML(with_ledger(network_xml, plan.volumes)))
        net.create()
        for name, xml in zip(plan.volumes, volume_xmls, strict=True):
            created.issue("volume", name, lambda: plan.pool.createXML(xml, 0))
        for name, xml in zip(plan.domains, domain_xmls, strict=True):
            created.domains.append(created.issue("domain", name, lambda: conn.defineXML(xml)))
        with ThreadPoolExecutor(max_workers=min(8, len(created.domains)) or 1) as pool:
            list(pool.map(lambda d: d.create(), created.domains))
    except libvirt.libvirtError as exc:
        cause = _msg(exc)
        left, why = rollback(conn, spec, created)
        outcome = _rollback_failed(spec, created, left, why) if left else "everything created so far was removed"
        raise KvmError(f"kvm: libvirt refused to create cluster {spec.name}: {cause}; {outcome}") from None
    except BaseException:
        left, why = rollback(conn, spec, created)
        if left:
            log.error("kvm: %s", _rollback_failed(spec, created, left, why))
        raise
    return created.domains, time.monotonic() - t0


# ------------------------------------------------------------------ destroy


def _stop(obj) -> None:
    """Stop a domain/network; one that stops by itself meanwhile (test guests power off) is fine."""
    libvirt = _quiet_libvirt()
    try:
        if obj.isActive():
            obj.destroy()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_NO_DOMAIN):
            raise


def destroy(conn, spec: ClusterSpec, only_nodes: set[str] | None = None) -> list[str]:
    """Remove this cluster's domains, their volumes and the network (or just `only_nodes`)."""
    libvirt = _quiet_libvirt()
    kvm = kvm_section(spec)
    removed: list[str] = []
    volume_paths: set[str] = set()
    for dom in _owned_domains(conn, spec.name):
        info = owner_of(dom.XMLDesc(0)) or {}
        if only_nodes is not None and info.get("node") not in only_nodes:
            continue
        for src in ET.fromstring(dom.XMLDesc(0)).findall("devices/disk/source"):
            if src.get("volume"):
                volume_paths.add(f"{src.get('pool')}/{src.get('volume')}")
        _stop(dom)
        dom.undefineFlags(getattr(libvirt, "VIR_DOMAIN_UNDEFINE_NVRAM", 0))
        removed.append(f"domain {dom.name()}")
    if only_nodes is None:
        net = _lookup(conn.networkLookupByName, net_plan(spec).name)
        info = owner_of(net.XMLDesc(0)) if net is not None else None
        if net is not None and info and info.get("name") == spec.name:
            for v in filter(None, info["volumes"].split(",")):
                volume_paths.add(f"{kvm.storage_pool}/{v}")
            _stop(net)
            net.undefine()
            removed.append(f"network {net.name()}")
    for ref in sorted(volume_paths):
        pool_name, vol_name = ref.split("/", 1)
        pool = _lookup(conn.storagePoolLookupByName, pool_name)
        if pool is None:
            continue
        pool.refresh(0)
        vol = _lookup(pool.storageVolLookupByName, vol_name)
        if vol is not None:
            vol.delete(0)
            removed.append(f"volume {pool_name}/{vol_name}")
    return removed


def facts(conn, dom_type: str) -> dict:
    caps = ET.fromstring(conn.getCapabilities())
    model = caps.findtext("host/cpu/model") or "unknown"
    info = conn.getInfo()  # [arch, memory MiB, cpus, MHz, nodes, sockets, cores, threads]

    def ver(n: int) -> str:
        return f"{n // 1000000}.{n // 1000 % 1000}.{n % 1000}"

    cpu_name = None
    if conn.getURI().split("://", 1)[-1].startswith("/"):  # local: libvirt's model is the nearest named one
        try:
            cpu_name = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None)
        except OSError:
            pass
    return {
        "hypervisor": "kvm",
        "host_cpu_name": cpu_name or model,
        "uri": conn.getURI(),
        "libvirt_version": ver(conn.getLibVersion()),
        "qemu_version": ver(conn.getVersion()),
        "domain_type": dom_type,
        # Software emulation makes every timing slower and noisier: the report warns about it.
        "emulated": dom_type != "kvm",
        "host_cpu_model": model,
        "host_cpus": info[2],
        "host_memory_mib": info[1],
        "host_arch": info[0],
    }
