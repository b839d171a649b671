"""operators: every ClusterOperator Available, not Progressing, not Degraded; the detail names every unhealthy one."""

from __future__ import annotations

import pytest

from suites.details import named
from suites.kube import condition, path_for


def _status(co: dict, type_: str) -> str:
    c = condition(co, type_)
    return c.get("status", "Unknown") if c else "Unknown"


def problems_of(co: dict) -> list[str]:
    out = []
    for type_, good in (("Available", "True"), ("Progressing", "False"), ("Degraded", "False")):
        st = _status(co, type_)
        if st != good:
            # Short reasons only: the one-line detail must name every unhealthy operator; the
            # long compound reasons (A::B::C) are in the must-gather.
            reason = (condition(co, type_) or {}).get("reason", "")
            out.append(f"{type_}={st}" + (f" ({reason})" if reason and len(reason) <= 32 else ""))
    return out


@pytest.mark.criterion("operators")
def test_operators(openshift, record, note, fail_with_evidence):
    cos = openshift.list(path_for("config.openshift.io/v1", "clusteroperators"))
    if not cos:
        fail_with_evidence("no ClusterOperators: the cluster is not installed", ["clusteroperators"])
    bad = {co["metadata"]["name"]: problems_of(co) for co in cos}
    bad = {k: v for k, v in bad.items() if v}
    not_upgradeable = sorted(co["metadata"]["name"] for co in cos if _status(co, "Upgradeable") == "False")
    record("operators.count", len(cos), "count", better="higher")
    record("operators.unhealthy", len(bad), "count")
    if not_upgradeable:
        note(f"warning: Upgradeable=False on {', '.join(not_upgradeable)}")
    if bad:
        # Every unhealthy operator is named (the reasons shrink to make room, never the names).
        fail_with_evidence(lambda room: named(f"{len(bad)} of {len(cos)} operators unhealthy", bad, room),
                           [f"clusteroperator/{name}" for name in sorted(bad)])
