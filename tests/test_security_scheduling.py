"""Scheduling examples work as shipped; the CronJob's RBAC is least-privilege."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHED = ROOT / "examples" / "scheduling"
MANIFESTS = sorted((SCHED / "kubernetes").glob("*.yaml"))
READ_VERBS = {"get", "list", "watch"}
TEST_NAMESPACE = "okdbench-tests"


def _docs():
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_validate_strictly(path):
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    proc = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _grants():
    """(scope, namespace, rule) for every rule bound to the okdbench ServiceAccount."""
    docs = [d for _, d in _docs()]
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs
             if d["kind"] in ("Role", "ClusterRole")}
    out = []
    for b in docs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == "okdbench" for s in b["subjects"]):
            continue
        ref = b["roleRef"]
        ns = b["metadata"].get("namespace")
        key = (ref["kind"], ns if ref["kind"] == "Role" else None, ref["name"])
        assert key in roles, f"{b['metadata']['name']} binds {ref['name']}, which is not defined here (built-in roles are too broad)"
        for rule in roles[key]["rules"]:
            out.append(("cluster" if b["kind"] == "ClusterRoleBinding" else "namespace", ns, rule))
    return out


def test_rbac_grants_no_write_outside_its_namespace_and_no_secrets():
    grants = _grants()
    assert grants, "the okdbench ServiceAccount has no bindings"
    for scope, ns, rule in grants:
        verbs = set(rule["verbs"])
        assert not verbs & {"escalate", "bind", "impersonate", "*"}, rule
        if scope == "cluster":
            assert verbs <= READ_VERBS, f"cluster-wide write verbs {verbs - READ_VERBS} in {rule}"
            assert "*" not in rule["resources"] and "*" not in rule.get("apiGroups", []), rule
            assert not {"secrets", "configmaps"} & set(rule["resources"]), rule
            assert not rule.get("nonResourceURLs"), rule
        else:
            assert ns == TEST_NAMESPACE, f"namespaced rights outside {TEST_NAMESPACE}: {ns}"
            assert not {"rbac.authorization.k8s.io", "*"} & set(rule.get("apiGroups", [])), rule


def test_cronjob_is_safe_to_schedule():
    cron = next(d for _, d in _docs() if d["kind"] == "CronJob")
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    pod = job["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    c = pod["containers"][0]
    assert c["command"][:2] == ["okdbench", "nightly"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_systemd_units_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    for unit in ("okdbench-nightly.service", "okdbench-nightly.timer"):
        shutil.copy(SCHED / unit, tmp_path / unit)
    # ExecStart must name an existing binary for `verify`; point it at this interpreter.
    svc = tmp_path / "okdbench-nightly.service"
    svc.write_text(svc.read_text().replace("/usr/local/bin/okdbench", sys.executable))
    proc = subprocess.run(["systemd-analyze", "verify", str(svc), str(tmp_path / "okdbench-nightly.timer")],
                          capture_output=True, text=True)
    errors = [ln for ln in (proc.stdout + proc.stderr).splitlines()
              if "okdbench-nightly" in ln and "WorkingDirectory" not in ln and "EnvironmentFile" not in ln]
    assert proc.returncode == 0 or not errors, proc.stderr


def test_crontab_line_parses_and_timer_matches():
    lines = [ln for ln in (SCHED / "crontab").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    assert fields[:5] == ["0", "1", "*", "*", "*"]
    assert "okdbench nightly --config" in fields[5]
    timer = (SCHED / "okdbench-nightly.timer").read_text()
    assert "OnCalendar=*-*-* 01:00:00" in timer and "Persistent=true" in timer
    svc = (SCHED / "okdbench-nightly.service").read_text()
    assert "SuccessExitStatus=1" in svc and "nightly --config" in svc
