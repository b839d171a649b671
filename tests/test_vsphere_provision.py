"""provision/vsphere/platform.py against govmomi's simulator: real SOAP, real TLS, assertions through pyVmomi."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import urllib.request
from dataclasses import asdict
from pathlib import Path

import pytest
from pyVmomi import vim

from plumbing import redact
from provision.vsphere import platform as vsphere
from provision.spec import parse_spec
from provision.vsphere.plan import CLUSTER_KEY, ENCODING_KEY, IGNITION_KEY, KARGS_KEY, NODE_KEY
from tests.support.vcsim import prepare_template, vsphere_spec_data

pytestmark = pytest.mark.needs_vcsim


def write_ignition(workdir: Path) -> dict[str, bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    out = {}
    for role in ("bootstrap", "master", "worker"):
        doc = {"ignition": {"version": "3.2.0"}, "storage": {"files": [{"path": f"/etc/okdbench-{role}"}]}}
        if role == "bootstrap":  # big, like the real one: it cannot go into guestinfo
            doc["storage"]["files"].append({"path": "/opt/blob", "contents": {"source": "data:," + "x" * 200_000}})
        data = json.dumps(doc).encode()
        (workdir / f"{role}.ign").write_bytes(data)
        out[role] = data
    return out


def all_vms(si) -> dict[str, vim.VirtualMachine]:
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
    try:
        return {vm.name: vm for vm in view.view}
    finally:
        view.Destroy()


def extra(vm) -> dict[str, str]:
    return {o.key: o.value for o in vm.config.extraConfig}


@pytest.fixture
def sim(vcsim_fresh, monkeypatch):
    monkeypatch.setenv("VSPHERE_USERNAME", vcsim_fresh.username)
    monkeypatch.setenv("VSPHERE_PASSWORD", vcsim_fresh.password)
    si = vcsim_fresh.connect()
    prepare_template(si)
    yield vcsim_fresh
    redact.forget_secrets()


def test_provision_configures_vms_then_destroy_removes_exactly_them(sim, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    spec = parse_spec(vsphere_spec_data(sim))
    ignition = write_ignition(tmp_path / "work" / "installer")
    si = sim.connect()
    before = set(all_vms(si))

    result = vsphere.provision(spec, tmp_path / "work")

    assert [v.name for v in result.vms] == ["okd-sim-bootstrap", "okd-sim-master-0", "okd-sim-worker-0"]
    # The VPX template has an e1000 NIC: reported, not silently replaced.
    assert any("not vmxnet3" in f and "E1000" in f for f in result.findings)
    vms = all_vms(si)
    assert set(vms) - before == {v.name for v in result.vms}
    for machine in spec.machines():
        vm = vms[f"okd-sim-{machine.name}"]
        assert vm.config.hardware.numCPU == machine.vcpu
        assert vm.config.hardware.memoryMB == machine.memory_mib
        nic = next(d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard))
        assert nic.macAddress == machine.mac and nic.addressType == "manual"
        assert isinstance(nic.backing, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo)
        disk = next(d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk))
        assert disk.capacityInKB == -(-machine.disk // 2**30) * 2**20
        cfg = extra(vm)
        assert cfg["disk.EnableUUID"] == "TRUE" and cfg["stealclock.enable"] == "TRUE"
        assert cfg[ENCODING_KEY] == "base64" and cfg[CLUSTER_KEY] == "okd-sim" and cfg[NODE_KEY] == machine.name
        # The marks come with the clone, the rest with the reconfigure: every key set exactly once.
        keys = [o.key for o in vm.config.extraConfig]
        assert len(keys) == len(set(keys)), sorted(keys)
        assert cfg[KARGS_KEY] == (f"ip={machine.ip}::198.18.20.1:255.255.255.0:{machine.hostname}:ens192:none "
                                  "nameserver=198.18.20.2")
        data = base64.b64decode(cfg[IGNITION_KEY])
        if machine.role == "bootstrap":
            pointer = json.loads(data)
            merge = pointer["ignition"]["config"]["merge"][0]
            assert merge["verification"]["hash"] == "sha512-" + hashlib.sha512(ignition["bootstrap"]).hexdigest()
            assert len(data) < 1024
            # okdbench serves the full file at the pointer's URL, and only that file.
            with urllib.request.urlopen(merge["source"], timeout=5) as resp:
                assert resp.read() == ignition["bootstrap"]
        else:
            assert data == ignition[machine.role]
        assert vm.parent.name == "okd-sim" and vm.parent.parent.name == "vm"
        assert vm.runtime.powerState == vim.VirtualMachine.PowerState.poweredOn
    assert result.facts["datastore_type"] and result.facts["vcenter_version"]
    assert set(result.timings) >= {"vsphere.clone", "vsphere.reconfigure", "vsphere.power_on"}

    vsphere.remove_bootstrap(spec)
    assert "okd-sim-bootstrap" not in all_vms(si)
    with pytest.raises(OSError):  # the ignition server is gone with the bootstrap VM
        urllib.request.urlopen(spec.vsphere.ignition_url, timeout=2)

    removed = vsphere.destroy(spec)
    assert removed == ["/DC0/vm/okd-sim/okd-sim-master-0", "/DC0/vm/okd-sim/okd-sim-worker-0", "/DC0/vm/okd-sim"]
    assert set(all_vms(si)) == before  # the simulator's own VMs and the template are untouched
    assert si.content.searchIndex.FindByInventoryPath("DC0/vm/okd-sim") is None
    assert vsphere.destroy(spec) == []  # idempotent

    # The canary password never surfaces: not in logs, output, the result, or files written.
    out = capsys.readouterr()
    written = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    for text in (caplog.text, out.out, out.err, repr(result), json.dumps(asdict(result), default=str), written):
        assert sim.password not in text


def test_second_provision_of_same_cluster_is_refused_and_leaves_first_intact(sim, tmp_path):
    spec = parse_spec(vsphere_spec_data(sim))
    write_ignition(tmp_path / "installer")
    vsphere.provision(spec, tmp_path)
    si = sim.connect()
    before = {n: vm.runtime.powerState for n, vm in all_vms(si).items()}

    again = parse_spec(vsphere_spec_data(sim, folder="elsewhere"))
    with pytest.raises(vsphere.UserError) as err:
        vsphere.provision(again, tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert "okd-sim-bootstrap is already used by /DC0/vm/okd-sim/okd-sim-bootstrap" in msg
    assert {n: vm.runtime.powerState for n, vm in all_vms(si).items()} == before
    assert si.content.searchIndex.FindByInventoryPath("DC0/vm/elsewhere") is None
    vsphere.destroy(spec)


def test_destroy_leaves_foreign_vms_and_their_folder(sim, tmp_path):
    from tests.support.vcsim import wait_task

    si = sim.connect()
    # An LSI Logic controller in the template: a finding, and the clones keep it (no silent change).
    template = si.content.searchIndex.FindByInventoryPath("DC0/vm/okd-template")
    lsi = vim.vm.device.VirtualLsiLogicController(key=-100, busNumber=1, sharedBus="noSharing")
    wait_task(template.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[
        vim.vm.device.VirtualDeviceSpec(operation="add", device=lsi)])))
    spec = parse_spec(vsphere_spec_data(sim))
    write_ignition(tmp_path / "installer")
    result = vsphere.provision(spec, tmp_path)
    assert any("VirtualLsiLogicController, not ParaVirtual (pvscsi)" in f for f in result.findings)
    master = si.content.searchIndex.FindByInventoryPath("DC0/vm/okd-sim/okd-sim-master-0")
    assert any(isinstance(d, vim.vm.device.VirtualLsiLogicController) for d in master.config.hardware.device)
    # Someone else's VM in the cluster folder, carrying a name okdbench would use.
    folder = si.content.searchIndex.FindByInventoryPath("DC0/vm/okd-sim")
    pool = si.content.searchIndex.FindByInventoryPath("DC0/host/DC0_C0/Resources")
    task = template.CloneVM_Task(folder=folder, name="okd-sim-worker-1",
                                 spec=vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=pool), powerOn=False))
    wait_task(task)

    removed = vsphere.destroy(spec)
    assert "/DC0/vm/okd-sim/okd-sim-worker-1" not in removed and "/DC0/vm/okd-sim" not in removed
    assert [vm.name for vm in folder.childEntity] == ["okd-sim-worker-1"]


def test_failure_after_clone_rolls_back_vms_and_folder(sim, tmp_path, caplog):
    """A real mid-provision failure: one cluster host left the distributed switch, so attaching the
    clones' NICs to its portgroup is refused after the clones exist. Everything must be undone."""
    from tests.support.vcsim import wait_task

    si = sim.connect()
    dvs = si.content.searchIndex.FindByInventoryPath("DC0/network/DVS0")
    host = si.content.searchIndex.FindByInventoryPath("DC0/host/DC0_C0/DC0_C0_H2")
    member = vim.dvs.HostMember.ConfigSpec(operation="remove", host=host)
    wait_task(dvs.ReconfigureDvs_Task(vim.DistributedVirtualSwitch.ConfigSpec(
        configVersion=dvs.config.configVersion, host=[member])))
    # The template sits on a standard portgroup, so its clones are created fine.
    template = si.content.searchIndex.FindByInventoryPath("DC0/vm/okd-template")
    nic = next(d for d in template.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard))
    nic.backing = vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName="VM Network")
    wait_task(template.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[
        vim.vm.device.VirtualDeviceSpec(operation="edit", device=nic)])))
    spec = parse_spec(vsphere_spec_data(sim))
    write_ignition(tmp_path / "installer")
    before = set(all_vms(si))

    with pytest.raises(vsphere.UserError) as err:
        vsphere.provision(spec, tmp_path)
    msg = str(err.value)
    assert msg.startswith("vsphere reconfigure failed: okd-sim-bootstrap: InvalidArgument ") and "\n" not in msg
    assert "spec.deviceChange.device.port.switchUuid" in msg
    assert any("rolling back 3 VM(s) and folder /DC0/vm/okd-sim" in r.message for r in caplog.records)
    assert set(all_vms(si)) == before
    assert si.content.searchIndex.FindByInventoryPath("DC0/vm/okd-sim") is None
    with pytest.raises(OSError):  # the bootstrap ignition server did not outlive the failure
        urllib.request.urlopen(spec.vsphere.ignition_url, timeout=2)


def test_destroy_finds_marked_vms_an_admin_moved(sim, tmp_path):
    """Nodes moved into a sub-folder of the cluster folder, or out of it entirely, are still this
    cluster's (they carry the okdbench.cluster mark): bootstrap removal and destroy find them, and
    the next provision of the same cluster does not fail on their names."""
    from tests.support.vcsim import wait_task

    spec = parse_spec(vsphere_spec_data(sim))
    write_ignition(tmp_path / "installer")
    vsphere.provision(spec, tmp_path)
    si = sim.connect()
    folder = si.content.searchIndex.FindByInventoryPath("DC0/vm/okd-sim")
    sub = folder.CreateFolder("moved-by-admin")
    elsewhere = si.content.searchIndex.FindByInventoryPath("DC0/vm").CreateFolder("admin-elsewhere")
    vms = all_vms(si)
    wait_task(sub.MoveIntoFolder_Task([vms["okd-sim-worker-0"], vms["okd-sim-bootstrap"]]))
    wait_task(elsewhere.MoveIntoFolder_Task([vms["okd-sim-master-0"]]))

    vsphere.remove_bootstrap(spec)
    assert "okd-sim-bootstrap" not in all_vms(si)
    removed = vsphere.destroy(spec)
    assert removed == ["/DC0/vm/admin-elsewhere/okd-sim-master-0", "/DC0/vm/okd-sim/moved-by-admin/okd-sim-worker-0"]
    assert not {"okd-sim-master-0", "okd-sim-worker-0"} & set(all_vms(si))
    # The folders the admin made are not okdbench's: kept (and said so), never deleted.
    assert si.content.searchIndex.FindByInventoryPath("DC0/vm/okd-sim/moved-by-admin") is not None
    vsphere.provision(spec, tmp_path)  # no name clash left behind
    vsphere.destroy(spec)
