"""Specs and libvirt test-driver hosts shared by the audit tests."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from provision.spec import parse_spec

DATA = Path(__file__).parent / "data" / "audit"


def write_spec(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def kvm_spec_data(name: str, uri: str) -> dict:
    return {"name": name, "base_domain": "example.test", "platform": "kvm",
            "network": {"machine_cidr": "198.18.40.0/24"},
            "nodes": [{"role": "master", "count": 1, "vcpu": 2, "memory": "256MiB", "disk": "1GiB"},
                      {"role": "worker", "count": 1, "vcpu": 1, "memory": "256MiB", "disk": "1GiB"}],
            "kvm": {"uri": uri}}


def libvirt_test_host(tmp_path: Path, spec_data: dict, master_kind: str) -> Path:
    """A libvirt test-driver host holding the spec's VMs: master from kvm-<master_kind>.xml, worker from kvm-good.xml."""
    spec = parse_spec(spec_data)
    node = ET.fromstring("<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads>"
                         "<active>4</active><mhz>2000</mhz><model>x86_64</model></cpu><memory>8388608</memory></node>")
    for m, kind in zip(spec.machines(), (master_kind, "good")):
        dom = ET.parse(DATA / f"kvm-{kind}.xml").getroot()
        dom.set("type", "test")
        dom.find("name").text = f"{spec.name}-{m.name}"
        dom.find("vcpu").text = str(m.vcpu)
        dom.find("devices/interface/mac").set("address", m.mac)
        node.append(dom)
    path = tmp_path / "host.xml"
    ET.ElementTree(node).write(path)
    return path


def kvm_spec(tmp_path: Path, master_kind: str) -> tuple[Path, dict]:
    data = kvm_spec_data("aud", "test:///placeholder")
    host = libvirt_test_host(tmp_path, data, master_kind)
    data["kvm"]["uri"] = f"test://{host}"
    return write_spec(tmp_path, data), data


def label_nodes_by_ip(fake_cluster, spec_data: dict) -> dict[str, str]:
    """Give the fake cluster's first nodes the spec machines' IPs, as DHCP reservations would: machine -> node name."""
    spec = parse_spec(spec_data)
    names = [n["metadata"]["name"] for n in fake_cluster.list("nodes")]
    out = {}
    for m, node in zip(spec.machines(), names):
        def patch(o, ip=str(m.ip)):
            o["status"]["addresses"] = [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": o["metadata"]["name"]}]
        fake_cluster.patch("nodes", node, patch)
        out[m.name] = node
    return out


def kvm_security_spec(tmp_path: Path, qemu_conf: str) -> tuple[Path, dict]:
    """The good KVM test-driver host, its master given a world-readable fw_cfg ignition, and host config files
    (qemu.conf with this text, libvirtd.conf without a TCP listener) named relative to the spec."""
    spec_path, data = kvm_spec(tmp_path, "good")
    host = Path(data["kvm"]["uri"][len("test://"):])
    tree = ET.parse(host)
    master = tree.getroot().find("domain")
    ign = tmp_path / "master.ign"
    ign.write_text('{"ignition": {}}')
    ign.chmod(0o644)
    sysinfo = ET.SubElement(master, "sysinfo", {"type": "fwcfg"})
    ET.SubElement(sysinfo, "entry", {"name": "opt/com.coreos/config", "file": str(ign)})
    tree.write(host)
    (tmp_path / "qemu.conf").write_text(qemu_conf)
    (tmp_path / "libvirtd.conf").write_text("listen_tcp = 0\n")
    (tmp_path / "systemd").mkdir()
    data["kvm"]["host_config"] = {"qemu_conf": "qemu.conf", "libvirtd_conf": "libvirtd.conf",
                                  "virtproxyd_conf": "absent.conf", "systemd_dir": "systemd"}
    return write_spec(tmp_path, data), data
