"""vSphere render/plan and the bootstrap ignition server: pure, no vCenter."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from plumbing.errors import UserError
from provision.vsphere import platform as vsphere
from provision.okd.ignition_server import IgnitionServer, plan_server
from provision.spec import load_spec, parse_spec
from provision.vsphere.inventory import paths
from provision.vsphere.plan import KARGS_KEY, extra_config, network_kargs, pointer_ignition

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vsphere-cluster.yaml"


def spec_data(**vsphere) -> dict:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["vsphere"].update(vsphere)
    return data


def test_render_example_writes_install_config_and_plan_without_vcenter(tmp_path):
    spec = load_spec(EXAMPLE)  # vcenter.lab.example.com does not resolve here: render must not try
    files = vsphere.render(spec, tmp_path)
    assert [f.name for f in files] == ["install-config.yaml", "vsphere-plan.json"]
    ic = yaml.safe_load(files[0].read_text())
    assert ic["platform"] == {"none": {}} and ic["controlPlane"]["replicas"] == 3
    plan = json.loads(files[1].read_text())
    assert [vm["name"] for vm in plan["vms"]] == [
        "okd-vs-bootstrap", "okd-vs-master-0", "okd-vs-master-1", "okd-vs-master-2", "okd-vs-worker-0",
        "okd-vs-worker-1"]
    vm = plan["vms"][1]
    assert vm["template"] == "/DC1/vm/templates/fcos-39-vmware"
    assert vm["folder"] == "/DC1/vm/okd-vs" and vm["resource_pool"] == "/DC1/host/Compute/Resources"
    assert vm["datastore"] == "/DC1/datastore/vsanDatastore" and vm["network"] == "/DC1/network/VM-198-18-10"
    assert (vm["vcpu"], vm["memory_mib"], vm["disk_gib"]) == (4, 16384, 120)
    assert vm["extra_config"]["disk.EnableUUID"] == "TRUE" and vm["extra_config"]["stealclock.enable"] == "TRUE"
    assert vm["extra_config"][KARGS_KEY].endswith(":master-0.okd-vs.lab.example.com:ens192:none nameserver=198.18.10.2")
    for vm in plan["vms"]:
        first, second, third, fourth = (int(x, 16) for x in vm["mac"].split(":")[:4])
        assert (first, second, third) == (0x00, 0x50, 0x56) and fourth <= 0x3F  # VMware's static range


def test_plan_summarises_ignition_without_inlining_it(tmp_path):
    spec = load_spec(EXAMPLE)
    installer = tmp_path / "installer"
    installer.mkdir()
    secret = "SECRET-BOOTSTRAP-KEY-" + "z" * 40
    (installer / "bootstrap.ign").write_text(json.dumps({"ignition": {"version": "3.2.0"}, "x": secret}))
    (installer / "master.ign").write_text(json.dumps({"ignition": {"version": "3.2.0"}, "m": secret}))
    vsphere.render(spec, tmp_path)
    text = (tmp_path / "vsphere-plan.json").read_text()
    assert secret not in text
    plan = json.loads(text)
    boot, master, worker = plan["vms"][0]["ignition"], plan["vms"][1]["ignition"], plan["vms"][-1]["ignition"]
    assert boot["merged_file"]["sha256"] == hashlib.sha256((installer / "bootstrap.ign").read_bytes()).hexdigest()
    assert master["sha256"] == hashlib.sha256((installer / "master.ign").read_bytes()).hexdigest()
    assert "not yet generated" in worker["status"]


def test_kargs_always_name_the_interface_and_skip_without_static_ips():
    data = spec_data(interface="ens224")
    spec = parse_spec(data)
    m = spec.machines()[1]
    assert network_kargs(spec, m) == (f"ip={m.ip}::198.18.10.1:255.255.255.0:{m.hostname}:ens224:none "
                                      "nameserver=198.18.10.2")
    data["network"]["static_ips"] = False
    assert KARGS_KEY not in extra_config(parse_spec(data), m, b"{}")


def test_pointer_ignition_is_valid_and_pins_the_hash():
    doc = json.loads(pointer_ignition("http://198.18.10.3:8088/bootstrap.ign", "ab" * 64))
    assert doc["ignition"]["version"] == "3.2.0"
    assert doc["ignition"]["config"]["merge"] == [
        {"source": "http://198.18.10.3:8088/bootstrap.ign", "verification": {"hash": "sha512-" + "ab" * 64}}]


def test_paths_accept_bare_names_and_absolute_paths():
    spec = parse_spec(spec_data(cluster="/DC1/host/Racks/Compute", folder="okd/okd-vs", resource_pool="okdbench",
                                network="/DC1/network/dvs/pg-10"))
    p = paths(spec)
    assert p.cluster == "/DC1/host/Racks/Compute"
    assert p.resource_pool == "/DC1/host/Racks/Compute/Resources/okdbench"
    assert p.folder == "/DC1/vm/okd/okd-vs" and p.network == "/DC1/network/dvs/pg-10"


def test_ignition_server_serves_exactly_one_file():
    data = b'{"ignition":{"version":"3.2.0"}}'
    with IgnitionServer(data, "127.0.0.1") as server:
        with urllib.request.urlopen(server.url, timeout=5) as resp:
            assert resp.read() == data
        for other in ("/", "/auth/kubeconfig", "/master.ign", "/../bootstrap.ign"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(f"http://127.0.0.1:{server.port}{other}", timeout=5)
            assert err.value.code == 404
        assert server.fetches == ["127.0.0.1"]
        assert server.sha512 == hashlib.sha512(data).hexdigest()


def test_plan_server_local_external_and_invalid_urls():
    assert plan_server(parse_spec(spec_data(ignition_url="http://127.0.0.1:8088/b.ign"))) == ("127.0.0.1", 8088, "/b.ign")
    assert plan_server(parse_spec(spec_data(ignition_url="http://198.18.10.3:8088/bootstrap.ign"))) is None
    with pytest.raises(UserError, match=r"^vsphere.ignition_url: 'ftp://x/b.ign' is not an http\(s\) URL"):
        plan_server(parse_spec(spec_data(ignition_url="ftp://x/b.ign")))


def test_ignition_server_port_in_use_is_one_line():
    with IgnitionServer(b"{}", "127.0.0.1") as first:
        with pytest.raises(UserError, match=rf"^vsphere.ignition_url: cannot listen on 127.0.0.1:{first.port} "):
            IgnitionServer(b"{}", "127.0.0.1", first.port)


def test_inline_credentials_are_refused():
    data = spec_data()
    data["vsphere"]["credentials"] = {"password": "hunter2hunter2"}
    with pytest.raises(UserError, match="credentials must not be inline"):
        parse_spec(data)


def test_kvm_spec_is_refused(tmp_path):
    data = spec_data()
    data["platform"] = "kvm"
    data["kvm"] = {}
    with pytest.raises(UserError, match="^platform: 'kvm' spec given to the vSphere provisioner"):
        vsphere.render(parse_spec(data), tmp_path)
