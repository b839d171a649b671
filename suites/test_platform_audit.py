"""Platform audit (criteria `platform-audit` and `security-audit`): the hypervisor settings that cost
performance or break OKD, and those that expose the cluster's VMs.

Reads the node VMs on the hypervisor itself once per session (libvirt for --platform=kvm, vCenter
for vsphere), runs the rules of the README's "Platform audit rules", and records each finding:
as samples `audit.findings.count` / `security.findings.count` (labels severity, node, rule) and
`*.findings.total` per severity, in the criterion detail, and in full in <run>/audit.json. The
measured node sizes go to run.json `nodes` so the report warns when the platforms compared are
not sized alike; run.json `security` holds, per security rule, how many VMs comply.

`platform-audit` fails when a performance finding is at or above OKDBENCH_AUDIT_FAIL_ON,
`security-audit` when a security finding is at or above OKDBENCH_SECURITY_FAIL_ON (both default
high); `never` records findings without failing.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass

import pytest

from plumbing.errors import UserError
from provision.audit.compare import node_groups
from provision.audit.inventory import VmInfo
from provision.audit.platform import audit_spec
from provision.audit.rules import SEVERITIES, Finding, count_by_severity, of_kind, severity_rank
from provision.audit.report import criterion_summary, security_posture

log = logging.getLogger("okdbench.suites.audit")

FAIL_ON_ENV = "OKDBENCH_AUDIT_FAIL_ON"
SECURITY_FAIL_ON_ENV = "OKDBENCH_SECURITY_FAIL_ON"


def _fail_rank(env: str = FAIL_ON_ENV) -> int | None:
    value = os.environ.get(env, "high").strip().lower()
    if value == "never":
        return None
    if value not in SEVERITIES:
        pytest.fail(f"{env}: {value!r} is not allowed; use one of {', '.join(SEVERITIES)} or never", pytrace=False)
    return severity_rank(value)


def _kube_nodes(kubeconfig, insecure: bool) -> list[dict]:
    """Node name, providerID and addresses of the cluster, to label findings by node."""
    from suites.kube import Kube, node_identities

    return node_identities(Kube(kubeconfig, insecure=insecure, attempts=2))


def _vms_of_this_run(request, cfg) -> tuple[list[str] | None, dict[str, str] | None]:
    """The VMs provisioning reported, when this run stood the cluster up (else: found by spec MAC/name)."""
    if cfg.kubeconfig is not None:
        return None, None  # attached to an existing cluster: nothing to provision
    infra = request.getfixturevalue("infra")
    return [vm.name for vm in infra.vms], {vm.name: vm.role for vm in infra.vms}


@dataclass
class Audited:
    vms: list[VmInfo]
    findings: list[Finding]


@pytest.fixture(scope="module")
def audited(request, okdbench_config, run_writer) -> Audited:
    """One read of the hypervisor for both criteria; everything it found is written to the run folder."""
    cfg = okdbench_config
    if cfg.spec is None:
        pytest.skip("platform audit needs --spec to find the node VMs on the hypervisor (none given)")
    names, roles = _vms_of_this_run(request, cfg)
    nodes = None
    if cfg.kubeconfig is not None:
        try:
            nodes = _kube_nodes(cfg.kubeconfig, cfg.insecure)
        except Exception as exc:  # labels are a convenience: the audit stands without them
            log.warning("platform audit: cannot list nodes to label findings by node (%s)", type(exc).__name__)
    try:
        result = audit_spec(cfg.spec, insecure=cfg.insecure, names=names, roles=roles, nodes=nodes)
    except UserError as exc:
        pytest.skip(f"platform audit: no hypervisor access: {exc}")
    vms, findings = result.vms, result.findings
    performance, security = of_kind(findings, "performance"), of_kind(findings, "security")
    run_writer.update_info(
        nodes=node_groups(vms, cfg.spec),
        audit={"vms": [v.to_json() for v in vms], "findings": count_by_severity(performance), "facts": result.facts},
        security=security_posture(security, [v.name for v in vms], cfg.spec.platform),
    )
    (run_writer.dir / "audit.json").write_text(
        json.dumps({"platform": cfg.label, "vms": [v.to_json() for v in vms],
                    "findings": [f.to_json() for f in performance],
                    "security": [f.to_json() for f in security]}, indent=2, sort_keys=True) + "\n")
    for f in findings:
        log.info("audit finding: %s %s", f.kind, f.line())
    return Audited(vms, findings)


def _judge(audited: Audited, kind: str, env: str, record, note, metric: str) -> None:
    fail_rank = _fail_rank(env)
    findings = of_kind(audited.findings, kind)
    _record_counts(record, findings, metric)
    failing = [f for f in findings if fail_rank is not None and severity_rank(f.severity) <= fail_rank]
    summary = criterion_summary(findings, len(audited.vms))
    assert not failing, summary
    note(summary)


@pytest.mark.criterion("platform-audit")
def test_platform_audit(audited, record, note):
    _judge(audited, "performance", FAIL_ON_ENV, record, note, "audit.findings")


@pytest.mark.criterion("security-audit")
def test_security_audit(audited, record, note):
    _judge(audited, "security", SECURITY_FAIL_ON_ENV, record, note, "security.findings")


def _record_counts(record, findings: list[Finding], metric: str) -> None:
    per = Counter((f.severity, f.node or f.vm, f.rule) for f in findings)
    for (severity, node, rule), n in sorted(per.items()):
        record(f"{metric}.count", n, "count", severity=severity, node=node, rule=rule)
    # Totals, zeros included: a clean platform is a measurement too.
    for severity, n in count_by_severity(findings).items():
        record(f"{metric}.total", n, "count", severity=severity)
