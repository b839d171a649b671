"""The OKD install driver against a fake `openshift-install` (tests/fakebin) and a fake Kubernetes API.

The installer fake behaves like the real one at the process boundary (files written, log lines,
exit codes); the API is tests/fakekube over real HTTPS with a verified CA.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from plumbing import redact
from provision.okd import installer as okd
from provision.base import ProvisionResult
from provision.okd.csr import BOOTSTRAPPER, CLIENT_SIGNER, SERVING_SIGNER
from provision.spec import parse_spec

ROOT = Path(__file__).resolve().parents[1]
FAKE_INSTALLER = ROOT / "tests" / "fakebin" / "openshift-install"
REGISTRY = "imageregistry-config_managed-s3_ocp-4.8-aws.yaml"
REGISTRY_PATH = "/apis/imageregistry.operator.openshift.io/v1/configs/cluster"


def okd_spec(tmp_path: Path, name: str = "oi1", **kvm_extra):
    return parse_spec({
        "name": name, "base_domain": "okdbench.test", "platform": "kvm",
        "okd": {"installer": str(FAKE_INSTALLER)},
        "network": {"machine_cidr": "198.18.30.0/24"},
        "nodes": [{"role": "bootstrap", "count": 1, "vcpu": 4, "memory": "16GiB", "disk": "120GiB"},
                  {"role": "master", "count": 3, "vcpu": 4, "memory": "16GiB", "disk": "120GiB"},
                  {"role": "worker", "count": 1, "vcpu": 4, "memory": "16GiB", "disk": "120GiB"}],
        "kvm": {"base_image": "fcos.qcow2", "domain_type": "qemu", **kvm_extra},
    })


@pytest.fixture
def fast_progress(monkeypatch):
    monkeypatch.setattr(okd, "PROGRESS_EVERY_S", 0.05)
    monkeypatch.setenv("FAKE_OI_STEP_S", "0.1")


def test_create_ignition_configs_consumes_install_config(tmp_path):
    spec = okd_spec(tmp_path)
    paths = okd.create_ignition_configs(spec, tmp_path)
    assert set(paths) == {"bootstrap", "master", "worker"} and all(p.exists() for p in paths.values())
    d = okd.installer_dir(tmp_path)
    assert not (d / "install-config.yaml").exists()  # consumed, as the real installer does
    assert (d / "auth" / "kubeconfig").exists()
    assert oct(d.stat().st_mode & 0o777) == "0o700"
    password = (d / "auth" / "kubeadmin-password").read_text().strip()
    assert redact.redact_text(f"password: {password}") != f"password: {password}"


def test_fresh_ignition_is_reused_and_stale_is_refused(tmp_path, caplog):
    spec = okd_spec(tmp_path)
    paths = okd.create_ignition_configs(spec, tmp_path)
    before = paths["bootstrap"].read_bytes()
    with caplog.at_level(logging.INFO):
        okd.create_ignition_configs(spec, tmp_path)
    assert "reusing" in caplog.text and paths["bootstrap"].read_bytes() == before
    old = time.time() - 25 * 3600
    for p in paths.values():
        os.utime(p, (old, old))
    with pytest.raises(okd.InstallError) as exc:
        okd.create_ignition_configs(spec, tmp_path)
    msg = str(exc.value)
    assert "25.0 h old" in msg and "expire 24 h after creation" in msg and "\n" not in msg
    paths = okd.create_ignition_configs(spec, tmp_path, regenerate=True)
    assert okd.ignition_age_hours(paths) < 0.1


def test_ignition_age_limit_is_the_spec_field(tmp_path):
    paths = okd.create_ignition_configs(okd_spec(tmp_path), tmp_path)
    now = time.time() + 2 * 3600
    okd.check_ignition_fresh(paths, 24, now=now)
    with pytest.raises(okd.InstallError):
        okd.check_ignition_fresh(paths, 1, now=now)


def test_wait_for_shows_progress_phase_elapsed_and_deadline(tmp_path, caplog, fast_progress):
    spec = okd_spec(tmp_path)
    okd.create_ignition_configs(spec, tmp_path)
    with caplog.at_level(logging.INFO, logger="provision.okd.installer"):
        seconds = okd.run_installer(spec, ["wait-for", "bootstrap-complete", "--dir", str(okd.installer_dir(tmp_path))],
                                    phase="bootstrap-complete", deadline=time.time() + 23.5 * 3600)
    assert seconds > 0
    assert re.search(r"\[bootstrap-complete \d+m\d\ds\] ", caplog.text)  # installer lines tagged with phase + elapsed
    assert "It is now safe to remove the bootstrap resources" in caplog.text
    assert "bootstrap-complete: still waiting, elapsed" in caplog.text
    assert "bootstrap certificates expire in 23h" in caplog.text


def test_wait_for_failure_is_one_line(tmp_path, monkeypatch):
    spec = okd_spec(tmp_path)
    okd.create_ignition_configs(spec, tmp_path)
    monkeypatch.setenv("FAKE_OI_FAIL", "bootstrap-complete")
    with pytest.raises(okd.InstallError) as exc:
        okd.run_installer(spec, ["wait-for", "bootstrap-complete", "--dir", str(okd.installer_dir(tmp_path))],
                          phase="bootstrap-complete")
    assert "bootstrap-complete failed after" in str(exc.value) and "\n" not in str(exc.value)


def test_missing_installer_is_one_line(tmp_path):
    spec = okd_spec(tmp_path).model_copy(update={"okd": okd_spec(tmp_path).okd.model_copy(update={"installer": "no-such-openshift-install"})})
    with pytest.raises(okd.InstallError) as exc:
        okd.create_ignition_configs(spec, tmp_path)
    assert str(exc.value).startswith("okd.installer: no-such-openshift-install not found on PATH")


def _csr(fc, spec, cn_node: str, *, user: str | None = None, signer=CLIENT_SIGNER, name: str):
    serving = signer == SERVING_SIGNER
    cn = f"system:node:{cn_node}"
    return fc.add_csr(name=name, username=user or (cn if serving else BOOTSTRAPPER),
                      groups=["system:nodes", "system:authenticated"] if serving else
                      ["system:serviceaccounts", "system:serviceaccounts:openshift-machine-config-operator", "system:authenticated"],
                      signer=signer, cn=cn, org="system:nodes", dns=[cn_node] if serving else [])


@pytest.mark.parametrize("fake_cluster", ["empty"], indirect=True)
def test_complete_install_approves_only_valid_csrs_and_sets_registry(tmp_path, fake_cluster, monkeypatch, caplog, fast_progress):
    fc = fake_cluster
    spec = okd_spec(tmp_path)
    monkeypatch.setenv("FAKE_OI_KUBECONFIG", str(fc.kubeconfig))
    monkeypatch.setenv("FAKE_OI_STEPS", "6")
    okd.create_ignition_configs(spec, tmp_path)
    m0 = f"master-0.{spec.cluster_domain}"
    _csr(fc, spec, m0, name="csr-client-m0")
    _csr(fc, spec, m0, signer=SERVING_SIGNER, name="csr-serving-m0")
    _csr(fc, spec, "intruder.example.com", name="csr-intruder")
    _csr(fc, spec, "worker-0", user="system:serviceaccount:default:builder", name="csr-wrong-requester")
    # The registry config appears only once its operator is up, after the install has started: the
    # housekeeper's first look finds none (404), its next one finds it Removed. Tied to requests,
    # not to the clock, so the outcome does not depend on which of install and timer goes first.
    fc.before_request("GET", REGISTRY_PATH, 2, lambda: fc.load(REGISTRY, mutate=lambda c: (
        c["spec"].update(managementState="Removed"), c["spec"].pop("storage", None))))
    removed = []
    platform = SimpleNamespace(remove_bootstrap=lambda s, insecure=False: removed.append(s.name))
    result = ProvisionResult(platform="kvm", cluster=spec.name, vms=[], workdir=tmp_path)
    with caplog.at_level(logging.INFO):
        okd.complete_install(spec, platform, tmp_path, result, housekeeping_interval_s=0.1)
    status = {c["metadata"]["name"]: [x["type"] for x in (c.get("status") or {}).get("conditions", [])]
              for c in fc.list("certificatesigningrequests")}
    assert status == {"csr-client-m0": ["Approved"], "csr-serving-m0": ["Approved"],
                      "csr-intruder": [], "csr-wrong-requester": []}
    assert len(result.findings) == 2 and all(f.startswith("CSR left pending: ") for f in result.findings)
    assert any("not in this cluster" in f for f in result.findings)
    assert any("not the node-bootstrapper" in f for f in result.findings)
    reg = fc.get("configs", "cluster")["spec"]
    assert reg["managementState"] == "Managed" and reg["storage"] == {"emptyDir": {}}
    assert [r.status for r in fc.requests if r.method == "GET" and r.path == REGISTRY_PATH][:2] == [404, 200]
    assert removed == [spec.name]
    assert set(result.timings) == {"install.bootstrap.duration", "install.complete.duration"}
    assert result.kubeconfig == okd.installer_dir(tmp_path) / "auth" / "kubeconfig"
    password = (okd.installer_dir(tmp_path) / "auth" / "kubeadmin-password").read_text().strip()
    assert "Login to the console" in caplog.text and password not in caplog.text


@pytest.mark.parametrize("fake_cluster", ["empty"], indirect=True)
def test_registry_pvc_when_storage_class_given(tmp_path, fake_cluster):
    fc = fake_cluster
    fc.load(REGISTRY, mutate=lambda c: (c["spec"].update(managementState="Removed"), c["spec"].pop("storage", None)))
    api = okd._api_client(fc.kubeconfig, insecure=False)
    assert okd.set_registry_managed(api, "lvms-vg1")
    reg = fc.get("configs", "cluster")["spec"]
    assert reg["storage"] == {"pvc": {"claim": ""}} and reg["rolloutStrategy"] == "Recreate" and reg["replicas"] == 1


def test_secret_files_are_owner_only_and_a_failure_says_what_stays(tmp_path, caplog):
    """install-config.yaml (pull secret), ignition and auth/ are 0600 from creation; after a failed
    `create ignition-configs` the log names what stays and how to remove it."""
    spec = okd_spec(tmp_path)
    okd.create_ignition_configs(spec, tmp_path)
    d = okd.installer_dir(tmp_path)
    for p in [d, *d.rglob("*")]:
        assert p.stat().st_mode & 0o077 == 0, f"{p} is {oct(p.stat().st_mode & 0o777)}"

    failing = tmp_path / "failing-installer"
    failing.write_text("#!/bin/sh\necho 'level=fatal msg=\"failed to fetch Bootstrap Ignition Config\"'\nexit 1\n")
    failing.chmod(0o755)
    spec = spec.model_copy(update={"okd": spec.okd.model_copy(update={"installer": str(failing)})})
    work = tmp_path / "failed"
    with caplog.at_level(logging.WARNING), pytest.raises(okd.InstallError):
        okd.create_ignition_configs(spec, work)
    left = okd.installer_dir(work) / "install-config.yaml"
    assert left.exists() and left.stat().st_mode & 0o777 == 0o600
    assert "install-config.yaml" in caplog.text and f"rm -r {okd.installer_dir(work)}" in caplog.text
