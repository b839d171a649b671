"""Audit one cluster's VMs on its hypervisor: collect, run the platform's rules, check sizes against the spec."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

from plumbing.errors import UserError
from provision.audit import compare
from provision.audit.inventory import VmInfo, map_nodes
from provision.audit.rules import Finding, sort_findings
from provision.spec import ClusterSpec

log = logging.getLogger("okdbench.audit")


class AuditUnavailable(UserError):
    """The hypervisor cannot be reached or holds none of the cluster's VMs. One line."""


@dataclass
class AuditResult:
    platform: str
    findings: list[Finding]
    vms: list[VmInfo]
    facts: dict = field(default_factory=dict)


def _by_node(infos: list[VmInfo], nodes: list[dict] | None) -> dict[str, str]:
    return map_nodes(infos, nodes) if nodes else {}


def _kvm(spec: ClusterSpec, names: list[str] | None, roles: dict[str, str] | None,
         nodes: list[dict] | None) -> tuple[list[Finding], list[VmInfo], dict]:
    from provision.audit import collect_kvm, kvm, kvm_security
    from provision.audit.collect_kvm_security import collect_security

    uri = spec.kvm.uri if spec.kvm else "qemu:///system"
    try:
        conn = collect_kvm.open_connection(uri)
    except ConnectionError as exc:
        raise AuditUnavailable(f"kvm.uri: {exc}") from None
    try:
        inv = collect_kvm.collect(conn, spec.name, spec.machines(), names, roles)
        by_node = _by_node(inv.info, nodes)
        vms = [replace(vm, node=by_node.get(vm.name, "")) for vm in inv.vms]
        sec = collect_security(conn, vms, spec.kvm.host_config if spec.kvm else None, frozenset(by_node),
                               spec.source.parent if spec.source else None)
    finally:
        conn.close()
    findings = kvm.audit_kvm(vms, inv.host) + kvm_security.audit_kvm_security(vms, sec)
    return findings, [replace(i, node=by_node.get(i.name, "")) for i in inv.info], inv.facts


def _vsphere(spec: ClusterSpec, names: list[str] | None, roles: dict[str, str] | None,
             insecure: bool, nodes: list[dict] | None) -> tuple[list[Finding], list[VmInfo], dict]:
    from provision.audit import collect_vsphere, vsphere, vsphere_security
    from provision.vsphere.connect import session
    from provision.vsphere.inventory import find, paths

    with session(spec, insecure=insecure) as si:
        # The cluster's folder (or its datacenter): never read every VM of a large vCenter.
        p = paths(spec)
        root = find(si, p.folder) or find(si, p.datacenter)
        if root is None:
            raise AuditUnavailable(f"vsphere.datacenter: {p.datacenter} not found in vCenter {spec.vsphere.host}; check the spec")
        inv = collect_vsphere.collect(si, spec.name, spec.machines(), names, roles, root)
    by_node = _by_node(inv.info, nodes)
    vms = [replace(vm, node=by_node.get(vm.name, "")) for vm in inv.vms]
    findings = vsphere.audit_vsphere(vms) + vsphere_security.audit_vsphere_security(vms)
    findings += vsphere_security.session_finding(f"{spec.vsphere.host}:{spec.vsphere.port}",
                                                 insecure or spec.vsphere.insecure)
    return findings, [replace(i, node=by_node.get(i.name, "")) for i in inv.info], inv.facts


def audit_spec(spec: ClusterSpec, *, insecure: bool = False, names: list[str] | None = None,
               roles: dict[str, str] | None = None, nodes: list[dict] | None = None) -> AuditResult:
    """Every finding (performance and security) for the cluster's VMs.

    names/roles: the VMs a provisioning run reported (else: found by spec MAC/name). nodes: the
    cluster's Kubernetes nodes ({"name", "provider_id", "addresses"}); a VM matched to one has
    joined, which labels its findings and lets the rules that need a finished install judge it.
    """
    start = time.monotonic()
    log.info("audit: reading %s VMs of %s", spec.platform, spec.name)
    if spec.platform == "kvm":
        findings, infos, facts = _kvm(spec, names, roles, nodes)
    else:
        findings, infos, facts = _vsphere(spec, names, roles, insecure, nodes)
    if not infos:
        where = spec.kvm.uri if spec.platform == "kvm" and spec.kvm else (spec.vsphere.host if spec.vsphere else "?")
        raise AuditUnavailable(f"no VM of cluster {spec.name} found on {where} (matched by the spec's MACs and names "
                               f"{spec.name}-<node>); provision it first or check --spec")
    infos = sorted(infos, key=lambda i: (compare.ROLES.index(i.role) if i.role in compare.ROLES else 9, i.name))
    findings += compare.size_drift(infos, spec)
    log.info("audit: %d VMs, %d findings in %.1fs", len(infos), len(findings), time.monotonic() - start)
    return AuditResult(spec.platform, sort_findings(findings), infos, facts)
