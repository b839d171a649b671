"""Security floor, end to end: canary secrets configured for a full nightly (fake OKD API over
TLS, vCenter simulator, must-gather on a failed criterion) never show up in results/, the report,
logs, must-gather copies or the terminal; --insecure is loud and recorded."""

from __future__ import annotations

import base64
import os
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from results.store import load_runs
from tests.support.fakekube import FAKEBIN, started
from tests.support._bounded_run import run_bounded

ROOT = Path(__file__).resolve().parent.parent
TAG = uuid.uuid4().hex[:10]
TOKEN = f"sha256~CanaryKubeToken{TAG}xyz"
PULL_PASSWORD = f"CanaryPullPass{TAG}"
SSH_PRIVATE = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    f"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABCanarySsh{TAG}AAAA\n"
    f"QyNTUxOQAAACBCanarySshSecondLine{TAG}QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
SUITES = ["operators", "nodes", "api"]
ARGS = ["--api-calls", "3", "--wait-ready", "5", "--workload-timeout", "30", "--must-gather", "inspect"]


def _spec(tmp: Path, platform: str, vcsim) -> Path:
    (tmp / "pull-secret.json").write_text(
        '{"auths":{"quay.io":{"auth":"%s","email":"ops@example.com"}}}'
        % base64.b64encode(f"canary:{PULL_PASSWORD}".encode()).decode())
    (tmp / "id_canary").write_text(SSH_PRIVATE)
    (tmp / "id_canary.pub").write_text(f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICanaryPub{TAG} ops@example.com\n")
    spec = {
        "name": f"canary-{platform}", "base_domain": "okdbench.test", "platform": platform,
        "network": {"machine_cidr": "198.18.20.0/24"},
        "nodes": [{"role": "master", "count": 3, "vcpu": 4, "memory": "16GiB", "disk": "120GiB"},
                  {"role": "worker", "count": 3, "vcpu": 4, "memory": "16GiB", "disk": "120GiB"}],
        "pull_secret": "pull-secret.json", "ssh_public_key": "id_canary.pub",
    }
    if platform == "vsphere":
        spec["vsphere"] = {"host": vcsim.host, "port": vcsim.port, "datacenter": "DC0", "cluster": "DC0_C0",
                           "datastore": "LocalDS_0", "network": "VM Network", "template": "okd-template",
                           "ca_bundle": str(vcsim.ca_bundle),
                           "credentials": {"username_env": "VSPHERE_USERNAME", "password_env": "VSPHERE_PASSWORD"}}
    else:
        spec["kvm"] = {}
    path = tmp / f"{platform}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def nightly(tmp_path_factory, vcsim):
    tmp = tmp_path_factory.mktemp("canary")
    with started(tmp_path_factory.mktemp("fake-okd")) as fc:
        fc.token = TOKEN  # the API server now only accepts the canary token
        kubeconfig = fc.write_kubeconfig(tmp / "kubeconfig")
        # A degraded operator fails a criterion, so must-gather runs and copies cluster state.
        fc.set_condition("clusteroperators", "dns", "Degraded", "True", "DNSDegraded", "scripted for the canary test")
        common = {"kubeconfig": "kubeconfig", "suites": SUITES, "timeout": "5m",
                  "pytest_args": ARGS + ["--ingress-address", fc.ingress_address]}
        cfg = {
            "results_dir": "results", "reports_dir": "reports/out", "logs_dir": "logs",
            "baseline": "vsphere", "candidate": "kvm",
            "platforms": [
                {"label": "vsphere", "platform": "vsphere", "spec": str(_spec(tmp, "vsphere", vcsim)), **common},
                {"label": "kvm", "platform": "kvm", "spec": str(_spec(tmp, "kvm", vcsim)), "insecure": True, **common},
            ],
        }
        (tmp / "nightly.yaml").write_text(yaml.safe_dump(cfg))
        env = {**os.environ, **vcsim.env(), "PATH": f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}"}
        proc = run_bounded([sys.executable, "-m", "okdbench", "nightly", "--config", str(tmp / "nightly.yaml")],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        yield tmp, proc, vcsim


def _canaries(vcsim) -> dict[str, str]:
    pull_auth = base64.b64encode(f"canary:{PULL_PASSWORD}".encode()).decode()
    return {
        "vCenter password": vcsim.password,
        "vCenter password (base64)": base64.b64encode(vcsim.password.encode()).decode(),
        "kubeconfig token": TOKEN,
        "kubeconfig token (no prefix)": TOKEN.removeprefix("sha256~"),
        "pull secret password": PULL_PASSWORD,
        "pull secret auth": pull_auth,
        "SSH private key": f"CanarySsh{TAG}",
        "SSH private key, line 2": f"CanarySshSecondLine{TAG}",
    }


def test_the_run_really_happened(nightly):
    tmp, proc, _ = nightly
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]  # the degraded operator fails a criterion
    assert TOKEN in (tmp / "kubeconfig").read_text()  # the canary really was configured
    runs = load_runs([tmp / "results"])
    assert {r.platform for r in runs.runs} == {"vsphere", "kvm"}
    failed = runs.criteria[runs.criteria["status"] == "failed"]
    assert "operators" in set(failed["criterion"])
    gathered = list((tmp / "results").glob("*/must-gather/**/*"))
    assert any(p.is_file() for p in gathered), "must-gather copied nothing: the test would prove nothing"
    assert list((tmp / "logs").glob("*.log")) and (tmp / "reports" / "out" / "nightly.html").is_file()


def test_no_canary_anywhere(nightly):
    tmp, proc, vcsim = nightly
    canaries = _canaries(vcsim)
    written = [p for p in tmp.rglob("*") if p.is_file() and p.parent != tmp and p.name not in ("pull-secret.json",)]
    # Inputs (the secrets' own files and the kubeconfig) are at the top level of tmp and are excluded above.
    assert len(written) > 10
    leaks = []
    for p in written:
        data = p.read_bytes()
        for what, value in canaries.items():
            if value.encode() in data:
                leaks.append(f"{what} in {p.relative_to(tmp)}")
    for stream, text in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        for what, value in canaries.items():
            if value in text:
                leaks.append(f"{what} in the nightly's {stream}")
    assert not leaks, leaks


def test_insecure_is_loud_and_recorded(nightly):
    tmp, proc, _ = nightly
    runs = {r.platform: r for r in load_runs([tmp / "results"]).runs}
    assert runs["kvm"].insecure is True and runs["vsphere"].insecure is False
    assert "TLS certificates are NOT verified" in proc.stderr
    assert "--insecure" in " ".join(runs["kvm"].command_line)
    html = (tmp / "reports" / "out" / "nightly.html").read_text()
    assert "insecure" in html.lower()


def test_tls_is_verified_by_default(nightly, tmp_path):
    """The same cluster with a kubeconfig that trusts another CA: the suites refuse it (no silent fallback)."""
    tmp, _, _ = nightly
    from tests.fakekube.certs import CertificateAuthority as CA

    with started(tmp_path / "fk") as fc:
        other = CA("not-the-cluster-ca")
        kc = fc.write_kubeconfig(tmp_path / "kc", ca_pem=other.cert_pem)
        proc = run_bounded([sys.executable, "-m", "pytest", "suites/test_nodes.py", "--platform=kvm",
                               "--kubeconfig", str(kc), "--results-dir", str(tmp_path / "r"), "-p", "no:cacheprovider",
                               "--wait-ready", "2"], cwd=ROOT, capture_output=True, text=True)
    rs = load_runs([tmp_path / "r"])
    statuses = set(rs.criteria["status"])
    assert statuses and statuses <= {"failed", "error", "skipped"} and "passed" not in statuses
    assert "CERTIFICATE_VERIFY_FAILED" in proc.stdout + proc.stderr or "certificate verify failed" in (proc.stdout + proc.stderr)
