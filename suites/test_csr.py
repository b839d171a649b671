"""csr: no pending CSRs, and no approved node CSR that the approval rules would have refused."""

from __future__ import annotations

import time

import pytest

from provision.okd.csr import evaluate_csr
from suites.kube import Informer, condition_is, path_for, settling

CSRS = path_for("certificates.k8s.io/v1", "certificatesigningrequests")


def _decided(csr: dict) -> bool:
    return any(condition_is(csr, t) for t in ("Approved", "Denied", "Failed"))


@pytest.mark.criterion("csr")
def test_csr(kube, record, note, suite_options, fail_with_evidence):
    nodes = {n["metadata"]["name"] for n in kube.list(path_for("v1", "nodes"))}
    # A CSR submitted minutes ago is normal (the machine approver is about to act): give recent ones
    # up to --wait-ready; an old pending CSR is stuck and fails at once.
    informer = Informer(kube, CSRS)
    informer.run(done=lambda: not any(not _decided(c) and settling(c["metadata"].get("creationTimestamp"))
                                      for c in informer.cache.values()),
                 until=time.monotonic() + suite_options.wait_ready)
    csrs = list(informer.cache.values())
    pending = sorted(c["metadata"]["name"] for c in csrs if not _decided(c))
    findings = []
    for csr in csrs:
        if not condition_is(csr, "Approved"):
            continue
        verdict = evaluate_csr(csr, nodes)
        if verdict.kind != "other" and not verdict.approve:
            findings.append(verdict.reason)
    record("csr.pending", len(pending), "count")
    record("csr.approved_rule_violations", len(findings), "count")
    note(f"{len(csrs)} CSRs")
    problems = []
    if findings:
        problems.append(f"SECURITY: {len(findings)} approved CSR(s) fail the approval rules: {findings[0]}"
                        + (f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""))
    if pending:
        problems.append(f"{len(pending)} pending CSR(s): {', '.join(pending[:5])}")
    if problems:
        fail_with_evidence("; ".join(problems), ["certificatesigningrequests"])
