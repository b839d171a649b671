"""Bad input against the simulator: one line naming the object path and the fix, nothing created."""

from __future__ import annotations

import json

import pytest
from pyVmomi import vim

from plumbing import redact
from plumbing.errors import UserError
from provision.vsphere import platform as vsphere
from provision.spec import parse_spec
from tests.support.vcsim import free_port, prepare_template, vsphere_spec_data

pytestmark = pytest.mark.needs_vcsim


@pytest.fixture(scope="module")
def shared(vcsim):
    prepare_template(vcsim.connect())
    return vcsim


@pytest.fixture
def env(shared, monkeypatch):
    monkeypatch.setenv("VSPHERE_USERNAME", shared.username)
    monkeypatch.setenv("VSPHERE_PASSWORD", shared.password)
    yield shared
    redact.forget_secrets()


@pytest.fixture
def workdir(tmp_path):
    d = tmp_path / "installer"
    d.mkdir()
    for role in ("bootstrap", "master", "worker"):
        (d / f"{role}.ign").write_text(json.dumps({"ignition": {"version": "3.2.0"}}))
    return tmp_path


def inventory(sim) -> set[str]:
    si = sim.connect()
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.ManagedEntity], True)
    try:
        return {f"{type(e).__name__}:{e.name}" for e in view.view}
    finally:
        view.Destroy()


def provision_error(sim, workdir, **overrides) -> str:
    before = inventory(sim)
    spec = parse_spec(vsphere_spec_data(sim, **overrides))
    with pytest.raises(UserError) as err:
        vsphere.provision(spec, workdir)
    assert inventory(sim) == before, "a failed provision left objects behind"
    msg = str(err.value)
    assert "\n" not in msg and sim.password not in msg
    return msg


@pytest.mark.parametrize("field,value,expected", [
    ("datacenter", "DC9", "vsphere.datacenter: datacenter /DC9 not found in vCenter"),
    ("cluster", "C9", "vsphere.cluster: cluster /DC0/host/C9 not found in vCenter; /DC0/host has: DC0_C0, DC0_H0"),
    ("datastore", "nope-ds", "vsphere.datastore: datastore /DC0/datastore/nope-ds not found in vCenter; "
                             "/DC0/datastore has: LocalDS_0"),
    ("network", "VLAN 99", "vsphere.network: network /DC0/network/VLAN 99 not found in vCenter"),
    ("template", "fcos-missing", "vsphere.template: template VM /DC0/vm/fcos-missing not found in vCenter"),
    ("template", "DC0_C0_RP0_VM1", "vsphere.template: /DC0/vm/DC0_C0_RP0_VM1 is poweredOn; power it off"),
    ("datastore", "/DC0/network/VM Network", "vsphere.datastore: /DC0/network/VM Network is a Network, not a datastore"),
    ("resource_pool", "gold", "vsphere.resource_pool: resource pool /DC0/host/DC0_C0/Resources/gold not found"),
    ("folder", "teams/okd", "vsphere.folder: parent VM folder /DC0/vm/teams not found in vCenter"),
])
def test_unknown_inventory_objects(env, workdir, field, value, expected):
    assert expected in provision_error(env, workdir, **{field: value})


def test_unreachable_vcenter(env, workdir):
    msg = provision_error(env, workdir, port=free_port())
    assert msg.startswith("vsphere.host: vCenter 127.0.0.1:") and "is unreachable" in msg


def test_tls_without_the_ca_fails_clearly(env, workdir):
    msg = provision_error(env, workdir, ca_bundle=str(env.other_ca_bundle))
    assert msg.startswith(f"vsphere.host: TLS certificate of vCenter 127.0.0.1:{env.port} is not trusted")
    assert "does not contain the CA that signed it" in msg
    # No bundle at all: the system store does not know the test CA either.
    msg = provision_error(env, workdir, ca_bundle=None)
    assert "set vsphere.ca_bundle to the CA that signed it" in msg


def test_insecure_connects_with_a_loud_warning(env, caplog):
    spec = parse_spec(vsphere_spec_data(env, ca_bundle=str(env.other_ca_bundle)))
    facts = vsphere.hypervisor_facts(spec, insecure=True)
    assert facts["vcenter_version"]
    assert any("TLS verification" in r.message and r.levelname == "WARNING" for r in caplog.records)


def test_wrong_password_is_one_line(env, workdir, monkeypatch):
    monkeypatch.setenv("VSPHERE_PASSWORD", "wrong-" + env.password)
    msg = provision_error(env, workdir)
    assert msg == (f"vsphere.credentials: vCenter 127.0.0.1:{env.port} rejected the login (wrong username or "
                   "password); fix $VSPHERE_USERNAME/$VSPHERE_PASSWORD")


def test_missing_password_env(env, workdir, monkeypatch):
    monkeypatch.delenv("VSPHERE_PASSWORD")
    msg = provision_error(env, workdir)
    assert msg.startswith("vsphere.credentials.password_env: environment variable VSPHERE_PASSWORD is not set")


def test_credentials_file(env, workdir, tmp_path, monkeypatch):
    monkeypatch.delenv("VSPHERE_USERNAME")
    monkeypatch.delenv("VSPHERE_PASSWORD")
    creds = tmp_path / "vcenter.yaml"
    creds.write_text(f"username: {env.username}\npassword: {env.password}\n")
    creds.chmod(0o600)
    spec = parse_spec(vsphere_spec_data(env, credentials={"file": str(creds), "username_env": None,
                                                          "password_env": None}))
    assert vsphere.hypervisor_facts(spec)["hosts"] == 3
    creds.write_text(f"username: {env.username}\n")
    with pytest.raises(UserError, match="needs both 'username' and 'password'"):
        vsphere.hypervisor_facts(spec)


def test_unreadable_ca_bundle(env, workdir, tmp_path):
    msg = provision_error(env, workdir, ca_bundle=str(tmp_path / "missing.pem"))
    assert msg.startswith(f"vsphere.ca_bundle: cannot load {tmp_path / 'missing.pem'}")


def test_missing_ignition_files(env, tmp_path):
    msg = provision_error(env, tmp_path)
    assert msg.startswith(f"ignition: {tmp_path / 'installer' / 'bootstrap.ign'} is missing")


def test_hypervisor_facts(env):
    facts = vsphere.hypervisor_facts(parse_spec(vsphere_spec_data(env)))
    assert facts["vcenter_product"].startswith("VMware vCenter Server")
    assert facts["esxi_versions"] and all(v.startswith("6.5") for v in facts["esxi_versions"])
    assert facts["host_cpu_models"] == ["Intel(R) Core(TM) i7-3615QM CPU @ 2.30GHz"]
    assert facts["host_cpu_model"] == "Intel(R) Core(TM) i7-3615QM CPU @ 2.30GHz"
    assert facts["esxi_version"].startswith("6.5.0 build ")
    assert facts["datastore_type"] == "OTHER" and facts["hosts"] == 3



def test_network_not_on_the_cluster_hosts(env, workdir):
    """A port group of a distributed switch none of the cluster's hosts joined: refused before any clone."""
    from tests.support.vcsim import wait_task

    si = env.connect()
    if si.content.searchIndex.FindByInventoryPath("DC0/network/pg-unattached") is None:
        net_folder = si.content.searchIndex.FindByInventoryPath("DC0/network")
        dvs = wait_task(net_folder.CreateDVS_Task(vim.DistributedVirtualSwitch.CreateSpec(
            configSpec=vim.DistributedVirtualSwitch.ConfigSpec(name="dvs-unattached"))))
        wait_task(dvs.AddDVPortgroup_Task([vim.dvs.DistributedVirtualPortgroup.ConfigSpec(
            name="pg-unattached", type="earlyBinding", numPorts=8)]))
    msg = provision_error(env, workdir, network="pg-unattached")
    assert msg == ("vsphere.network: /DC0/network/pg-unattached is not connected to the hosts of /DC0/host/DC0_C0; "
                   "pick a network (port group) the cluster's hosts have")
