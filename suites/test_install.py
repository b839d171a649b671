"""install: the cluster version is Available, not Progressing or Failing, and its last update Completed."""

from __future__ import annotations

from datetime import datetime

import pytest

from suites.kube import condition, path_for


def _ts(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _cond(cv: dict, type_: str) -> str:
    c = condition(cv, type_)
    return c.get("status", "Unknown") if c else "Unknown"


def _why(cv: dict, type_: str) -> str:
    c = condition(cv, type_) or {}
    msg = c.get("message") or c.get("reason") or ""
    return f" ({msg[:160]})" if msg else ""


@pytest.mark.criterion("install")
def test_install(openshift, cluster, record, note, fail_with_evidence):
    cv = openshift.get_or_none(path_for("config.openshift.io/v1", "clusterversions", name="version"))
    if cv is None:
        fail_with_evidence("ClusterVersion 'version' not found: the installer did not finish", ["clusterversions"])
    status = cv.get("status") or {}
    desired = (status.get("desired") or {}).get("version", "?")
    note(f"version {desired}")
    if cluster.provisioned:
        for phase, seconds in sorted(cluster.timings.items()):
            record(f"install.{phase}", seconds, "s", phase=phase)
    history = status.get("history") or []
    first = history[-1] if history else {}
    started, completed = _ts(first.get("startedTime")), _ts(first.get("completionTime"))
    if first.get("state") == "Completed" and started and completed:
        # The cluster's own record of its install: from the CVO starting to every operator at the
        # target version. Comparable across platforms even when okdbench did not provision.
        record("install.cluster_version", (completed - started).total_seconds(), "s", version=first.get("version", "?"))
    problems = []
    if _cond(cv, "Available") != "True":
        problems.append(f"Available={_cond(cv, 'Available')}{_why(cv, 'Available')}")
    if _cond(cv, "Progressing") == "True":
        problems.append(f"Progressing=True{_why(cv, 'Progressing')}")
    if _cond(cv, "Failing") == "True":
        problems.append(f"Failing=True{_why(cv, 'Failing')}")
    if not history:
        problems.append("history is empty")
    elif history[0].get("state") != "Completed":
        problems.append(f"history[0] {history[0].get('version', '?')} is {history[0].get('state', '?')}")
    if problems:
        fail_with_evidence(f"cluster version {desired}: " + "; ".join(problems), ["clusterversion/version", "clusteroperators"])
