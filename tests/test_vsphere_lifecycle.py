"""The shared OKD lifecycle (provision/lifecycle.py) driving vSphere: simulator VMs, a fake
openshift-install at the process boundary, and the fake Kubernetes API for CSRs/registry."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import urllib.request

import pytest
from pyVmomi import vim

from plumbing import redact
from provision.audit.platform import audit_spec
from provision.lifecycle import destroy_cluster, provision_cluster
from provision.vsphere.plan import IGNITION_KEY
from provision.vsphere.scrub import ignition_value
from provision.spec import parse_spec
from tests.support.vcsim import prepare_template, vsphere_spec_data

pytestmark = pytest.mark.needs_vcsim

FAKE_INSTALLER = """\
#!{python}
# Behaves like openshift-install at the process boundary: files in --dir, log lines, exit codes.
import json, os, pathlib, shutil, sys, urllib.request
args = sys.argv[1:]
d = pathlib.Path(args[args.index("--dir") + 1])
def info(msg): print(f'level=info msg="{{msg}}"', flush=True)
if args[:2] == ["create", "ignition-configs"]:
    assert (d / "install-config.yaml").exists()
    for role in ("bootstrap", "master", "worker"):
        doc = {{"ignition": {{"version": "3.2.0"}}, "role": role}}
        if role == "bootstrap":
            doc["blob"] = "b" * 150000
        (d / f"{{role}}.ign").write_text(json.dumps(doc))
    (d / "auth").mkdir(exist_ok=True)
    shutil.copy(os.environ["FAKE_KUBECONFIG"], d / "auth" / "kubeconfig")
    (d / "auth" / "kubeadmin-password").write_text("kubeadmin-canary-Zx81")
    info("Ignition-Configs created in: " + str(d))
elif args[:2] == ["wait-for", "bootstrap-complete"]:
    # The bootstrap VM would now merge its full ignition from okdbench's server: do the same.
    url = os.environ["FAKE_IGNITION_URL"]
    data = urllib.request.urlopen(url, timeout=5).read()
    assert data == (d / "bootstrap.ign").read_bytes(), "served bootstrap ignition differs"
    info("It is now safe to remove the bootstrap resources")
elif args[:2] == ["wait-for", "install-complete"]:
    info("Install complete!")
else:
    print(f'level=fatal msg="unexpected arguments {{args}}"'); sys.exit(3)
"""


@pytest.fixture
def installer(tmp_path):
    path = tmp_path / "bin" / "openshift-install"
    path.parent.mkdir()
    path.write_text(FAKE_INSTALLER.format(python=sys.executable))
    path.chmod(0o755)
    return path


def test_lifecycle_provisions_installs_and_destroys_on_vsphere(vcsim_fresh, fake_cluster, installer, tmp_path,
                                                               monkeypatch, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    sim = vcsim_fresh
    monkeypatch.setenv("VSPHERE_USERNAME", sim.username)
    monkeypatch.setenv("VSPHERE_PASSWORD", sim.password)
    prepare_template(sim.connect())
    data = vsphere_spec_data(sim)
    data["okd"] = {"installer": str(installer)}
    spec = parse_spec(data)
    monkeypatch.setenv("FAKE_KUBECONFIG", str(fake_cluster.kubeconfig))
    monkeypatch.setenv("FAKE_IGNITION_URL", spec.vsphere.ignition_url)
    workdir = tmp_path / "work"

    try:
        result = provision_cluster(spec, workdir)
        si = sim.connect()
        folder = si.content.searchIndex.FindByInventoryPath("DC0/vm/okd-sim")
        vms = {vm.name: vm for vm in folder.childEntity}
        # Bootstrap removed after bootstrap-complete; the rest run.
        assert set(vms) == {"okd-sim-master-0", "okd-sim-worker-0"}
        assert all(vm.runtime.powerState == vim.VirtualMachine.PowerState.poweredOn for vm in vms.values())
        assert result.kubeconfig == workdir / "installer" / "auth" / "kubeconfig"
        assert {"provision.vms.duration", "install.bootstrap.duration", "install.complete.duration"} <= set(
            result.timings)
        assert result.facts["hypervisor"] == "vsphere"
        with pytest.raises(OSError):  # bootstrap ignition no longer served
            urllib.request.urlopen(spec.vsphere.ignition_url, timeout=2)
        # Once the nodes joined, provisioning emptied the ignition guestinfo (pull secret) on every VM,
        # and the security audit agrees (the simulator appends the empty value: the last one counts).
        assert {vm.name: ignition_value(vm) for vm in vms.values()} == {n: "" for n in vms}
        assert all(any(o.key == IGNITION_KEY for o in vm.config.extraConfig) for vm in vms.values())
        # okdbench's VMs carry the hardening settings: only the informational rules remain (Secure Boot,
        # vTPM, encryption depend on the template and a key provider).
        security = {f.rule for f in audit_spec(spec).findings if f.kind == "security"}
        assert security == {"vsphere.secure-boot", "vsphere.vtpm", "vsphere.encryption"}
    finally:
        removed = destroy_cluster(spec)
    assert "/DC0/vm/okd-sim" in removed
    assert destroy_cluster(spec) == []

    out = capsys.readouterr()
    written = "".join(p.read_text(errors="replace") for p in workdir.rglob("*") if p.is_file())
    for text in (caplog.text, out.out, out.err, json.dumps(result.__dict__, default=str), written):
        assert sim.password not in text
    redact.forget_secrets()
    shutil.rmtree(workdir / "installer", ignore_errors=True)
