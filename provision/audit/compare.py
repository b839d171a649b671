"""Is the comparison fair? Node sizes per role on two platforms, and VMs against their spec.

Pure functions over specs and VmInfo lists; the CLI and the suite print or record the result.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from provision.audit.inventory import VmInfo
from provision.audit.rules import Finding
from provision.spec import ClusterSpec
from results.schema import NodeGroupInfo

ROLES = ("bootstrap", "master", "worker")


@dataclass(frozen=True)
class RoleSize:
    role: str
    count: int
    vcpu: tuple[int, ...]  # distinct values: more than one means the role is unevenly sized
    memory_mib: tuple[int, ...]
    disk_gib: tuple[int, ...]
    disk: str  # e.g. 'virtio qcow2 cache=none io=native'; '' when unknown
    provisioning: str  # thin | thick | unknown


@dataclass(frozen=True)
class Side:
    """One platform's node sizes (and the settings worth showing next to them)."""

    label: str
    platform: str
    roles: dict[str, RoleSize]
    settings: dict[str, str] = field(default_factory=dict)


def side_from_spec(spec: ClusterSpec, label: str | None = None) -> Side:
    roles = {}
    settings: dict[str, str] = {}
    if spec.platform == "kvm" and spec.kvm is not None:
        t = spec.kvm.tuning
        # provision/kvm/platform.py creates qcow2 overlays on the base image: thin by construction.
        disk, prov = f"{t.disk_bus} qcow2 cache={t.disk_cache} io={t.disk_io}", "thin"
        cpu = t.cpu_mode + (f" ({t.cpu_model})" if t.cpu_model else "")
        settings = {"cpu": cpu, "disk": disk, "iothreads": str(t.iothreads),
                    "nic": f"{t.nic_model} queues={t.nic_queues or 'per vCPU'}",
                    "memballoon": "yes" if t.memballoon else "no", "storage pool": spec.kvm.storage_pool}
    else:
        vs = spec.vsphere
        # A clone inherits disk type, controller and NIC from the template: known only on vCenter.
        disk, prov = "from template", "unknown"
        if vs is not None:
            settings = {"template": vs.template, "datastore": vs.datastore, "cluster": vs.cluster}
    for g in spec.nodes:
        if g.count:
            roles[g.role] = RoleSize(g.role, g.count, (g.vcpu,), (g.memory_mib,), (g.disk_gib,), disk, prov)
    return Side(label or spec.name, spec.platform, roles, settings)


def side_from_vms(label: str, platform: str, infos: list[VmInfo]) -> Side:
    roles = {}
    for role in ROLES:
        vms = [i for i in infos if i.role == role]
        if not vms:
            continue
        disks = Counter(i.disk for i in vms)
        provs = {i.provisioning for i in vms}
        roles[role] = RoleSize(
            role, len(vms),
            tuple(sorted({i.vcpu for i in vms})), tuple(sorted({i.memory_mib for i in vms})),
            tuple(sorted({i.disk_gib for i in vms if i.disk_gib is not None})),
            disks.most_common(1)[0][0], provs.pop() if len(provs) == 1 else "mixed")
    return Side(label, platform, roles)


def _fmt(values: tuple[int, ...], unit: str = "") -> str:
    return "/".join(f"{v}{unit}" for v in values) if values else "?"


@dataclass(frozen=True)
class Comparison:
    rows: list[tuple[str, str, str, bool]]  # (what, side a, side b, differs)
    findings: list[Finding]  # nodes.size-mismatch: not comparable
    warnings: list[str]

    @property
    def comparable(self) -> bool:
        return not self.findings


def compare(a: Side, b: Side) -> Comparison:
    rows: list[tuple[str, str, str, bool]] = []
    findings: list[Finding] = []
    warnings: list[str] = []

    def mismatch(role: str, what: str, va: str, vb: str) -> None:
        findings.append(Finding("nodes.size-mismatch", "*", f"{what}: {a.label} {va} vs {b.label} {vb}", role, subject=role))

    for role in ROLES:
        ra, rb = a.roles.get(role), b.roles.get(role)
        if ra is None and rb is None:
            continue
        if role == "bootstrap":
            # The bootstrap VM is gone before any benchmark runs: shown, never a reason to refuse.
            if ra and rb:
                rows.append((f"{role} size", f"{_fmt(ra.vcpu)} vCPU {_fmt(ra.memory_mib)} MiB",
                             f"{_fmt(rb.vcpu)} vCPU {_fmt(rb.memory_mib)} MiB", (ra.vcpu, ra.memory_mib) != (rb.vcpu, rb.memory_mib)))
            continue
        ca, cb = (ra.count if ra else 0), (rb.count if rb else 0)
        rows.append((f"{role} count", str(ca), str(cb), ca != cb))
        if ca != cb:
            mismatch(role, "count", str(ca), str(cb))
        if not (ra and rb):
            continue
        for what, va, vb, unit in (("vCPU", ra.vcpu, rb.vcpu, ""), ("memory", ra.memory_mib, rb.memory_mib, " MiB")):
            rows.append((f"{role} {what}", _fmt(va, unit), _fmt(vb, unit), va != vb))
            if va != vb:
                mismatch(role, what, _fmt(va, unit), _fmt(vb, unit))
            for side, vals in ((a, va), (b, vb)):
                if len(vals) > 1:
                    mismatch(role, f"{what} uneven within {side.label}", _fmt(vals, unit), "")
        rows.append((f"{role} disk", _fmt(ra.disk_gib, " GiB"), _fmt(rb.disk_gib, " GiB"), ra.disk_gib != rb.disk_gib))
        if ra.disk_gib != rb.disk_gib:
            warnings.append(f"{role} disk size differs ({_fmt(ra.disk_gib, ' GiB')} vs {_fmt(rb.disk_gib, ' GiB')}): "
                            "matters only when a disk fills")
        rows.append((f"{role} disk type", f"{ra.disk} ({ra.provisioning})", f"{rb.disk} ({rb.provisioning})",
                     ra.provisioning != rb.provisioning))
        known = {"thin", "thick"}
        if ra.provisioning in known and rb.provisioning in known and ra.provisioning != rb.provisioning:
            mismatch(role, "disk provisioning", ra.provisioning, rb.provisioning)
        elif "mixed" in (ra.provisioning, rb.provisioning):
            mismatch(role, "disk provisioning", ra.provisioning, rb.provisioning)
        elif ra.provisioning not in known or rb.provisioning not in known:
            warnings.append(f"{role} disk provisioning not verified ({a.label}: {ra.provisioning}, "
                            f"{b.label}: {rb.provisioning}); run `okdbench audit --live` with hypervisor access")
    for key in sorted(set(a.settings) | set(b.settings)):
        va, vb = a.settings.get(key, "-"), b.settings.get(key, "-")
        rows.append((key, va, vb, False))
    return Comparison(rows, findings, sorted(set(warnings)))


def size_drift(infos: list[VmInfo], spec: ClusterSpec) -> list[Finding]:
    """VMs whose vCPU/memory on the hypervisor differ from their spec node group."""
    out = []
    for i in infos:
        g = spec.group(i.role)
        if g is None or not i.machine:
            continue
        diffs = []
        if i.vcpu != g.vcpu:
            diffs.append(f"vCPU {i.vcpu} (spec {g.vcpu})")
        if i.memory_mib != g.memory_mib:
            diffs.append(f"memory {i.memory_mib} MiB (spec {g.memory_mib} MiB)")
        if diffs:
            out.append(Finding("nodes.size-drift", i.name, ", ".join(diffs), i.role, i.node))
    return out


def node_groups(infos: list[VmInfo], spec: ClusterSpec | None = None) -> list[NodeGroupInfo]:
    """run.json's node inventory as measured on the hypervisor (largest size when a role is uneven).

    A disk size the hypervisor does not report comes from the spec, so the report does not see a
    difference between platforms that is only a gap in what was measured.
    """
    out = []
    for role in ROLES:
        vms = [i for i in infos if i.role == role]
        if vms:
            disks = [i.disk_gib for i in vms if i.disk_gib is not None]
            group = spec.group(role) if spec is not None else None
            disk = max(disks) if disks else (group.disk_gib if group else None)
            out.append(NodeGroupInfo(role=role, count=len(vms), vcpu=max(i.vcpu for i in vms),
                                     memory_mib=max(i.memory_mib for i in vms), disk_gib=disk))
    return out
