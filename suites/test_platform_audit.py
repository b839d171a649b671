"""Platform audit (criterion `platform-audit`): the hypervisor settings that cost performance or break OKD.

Reads the node VMs on the hypervisor itself (libvirt for --platform=kvm, vCenter for vsphere),
runs the rules of the README's "Platform audit rules", and records each finding: as samples
`audit.findings.count` (labels severity, node, rule) and `audit.findings.total` per severity,
in the criterion detail, and in full in <run>/audit.json. The measured node sizes go to
run.json `nodes` so the report warns when the platforms compared are not sized alike.

The criterion fails when a finding is at or above OKDBENCH_AUDIT_FAIL_ON (default: high);
`never` records findings without failing.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import replace

import pytest

from plumbing.errors import UserError
from provision.audit.compare import node_groups
from provision.audit.inventory import map_nodes
from provision.audit.platform import audit_spec
from provision.audit.rules import SEVERITIES, Finding, count_by_severity, severity_rank
from provision.audit.report import criterion_summary

log = logging.getLogger("okdbench.suites.audit")

FAIL_ON_ENV = "OKDBENCH_AUDIT_FAIL_ON"


def _fail_rank() -> int | None:
    value = os.environ.get(FAIL_ON_ENV, "high").strip().lower()
    if value == "never":
        return None
    if value not in SEVERITIES:
        pytest.fail(f"{FAIL_ON_ENV}: {value!r} is not allowed; use one of {', '.join(SEVERITIES)} or never", pytrace=False)
    return severity_rank(value)


def _kube_nodes(kubeconfig, insecure: bool) -> list[dict]:
    """Node name, providerID and addresses of the cluster, to label findings by node."""
    from suites.kube import Kube

    items = Kube(kubeconfig, insecure=insecure, attempts=2).list("/api/v1/nodes")
    return [{"name": n["metadata"]["name"], "provider_id": n.get("spec", {}).get("providerID", ""),
             "addresses": [a.get("address", "") for a in n.get("status", {}).get("addresses", [])]} for n in items]


def _vms_of_this_run(request, cfg) -> tuple[list[str] | None, dict[str, str] | None]:
    """The VMs provisioning reported, when this run stood the cluster up (else: found by spec MAC/name)."""
    if cfg.kubeconfig is not None:
        return None, None  # attached to an existing cluster: nothing to provision
    infra = request.getfixturevalue("infra")
    return [vm.name for vm in infra.vms], {vm.name: vm.role for vm in infra.vms}


@pytest.mark.criterion("platform-audit")
def test_platform_audit(request, okdbench_config, record, run_writer, note):
    cfg = okdbench_config
    fail_rank = _fail_rank()
    if cfg.spec is None:
        pytest.skip("platform audit needs --spec to find the node VMs on the hypervisor (none given)")
    names, roles = _vms_of_this_run(request, cfg)
    try:
        result = audit_spec(cfg.spec, insecure=cfg.insecure, names=names, roles=roles)
    except UserError as exc:
        pytest.skip(f"platform audit: no hypervisor access: {exc}")

    vms, findings = result.vms, result.findings
    if cfg.kubeconfig is not None:
        try:
            by_vm = map_nodes(vms, _kube_nodes(cfg.kubeconfig, cfg.insecure))
        except Exception as exc:  # labels are a convenience: the audit stands without them
            log.warning("platform audit: cannot list nodes to label findings by node (%s)", type(exc).__name__)
            by_vm = {}
        vms = [replace(v, node=by_vm.get(v.name, "")) for v in vms]
        findings = [replace(f, node=by_vm.get(f.vm, f.node)) for f in findings]

    run_writer.update_info(
        nodes=node_groups(vms, cfg.spec),
        audit={"vms": [v.to_json() for v in vms], "findings": count_by_severity(findings), "facts": result.facts},
    )
    (run_writer.dir / "audit.json").write_text(
        json.dumps({"platform": cfg.label, "vms": [v.to_json() for v in vms],
                    "findings": [f.to_json() for f in findings]}, indent=2, sort_keys=True) + "\n")

    _record_counts(record, findings)
    for f in findings:
        log.info("audit finding: %s", f.line())

    failing = [f for f in findings if fail_rank is not None and severity_rank(f.severity) <= fail_rank]
    summary = criterion_summary(findings, len(vms))
    assert not failing, summary
    note(summary)


def _record_counts(record, findings: list[Finding]) -> None:
    per = Counter((f.severity, f.node or f.vm, f.rule) for f in findings)
    for (severity, node, rule), n in sorted(per.items()):
        record("audit.findings.count", n, "count", severity=severity, node=node, rule=rule)
    # Totals, zeros included: a clean platform is a measurement too.
    for severity, n in count_by_severity(findings).items():
        record("audit.findings.total", n, "count", severity=severity)
