"""okdbench render for KVM: deterministic, valid XML/haproxy, DNS/DHCP/LB contents, tuning, NIC ignition."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from provision.kvm import platform as kvm
from provision.kvm import render as kvm_render
from provision.okd import nic
from provision.okd.installconfig import render_install_config
from provision.spec import parse_spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "kvm-cluster.yaml"
DNSMASQ = "{http://libvirt.org/schemas/network/dnsmasq/1.0}"


def make_spec(tmp_path: Path, *, workers: int = 2, tuning: dict | None = None, guest: str = "fcos",
              domain_type: str = "kvm", name: str = "c1", pull_secret: str | None = None) -> object:
    key = tmp_path / "id.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests okdbench@test\n")
    data = {
        "name": name, "base_domain": "okdbench.test", "platform": "kvm",
        "okd": {"guest": guest},
        "network": {"machine_cidr": "198.18.20.0/24"},
        "nodes": [{"role": "bootstrap", "count": 1, "vcpu": 4, "memory": "16GiB", "disk": "120GiB"},
                  {"role": "master", "count": 3, "vcpu": 4, "memory": "16GiB", "disk": "120GiB"},
                  {"role": "worker", "count": workers, "vcpu": 2, "memory": "8GiB", "disk": "120GiB"}],
        "ssh_public_key": str(key),
        "kvm": {"storage_pool": "default", "base_image": "fcos.qcow2", "domain_type": domain_type,
                "tuning": tuning or {}},
    }
    if guest == "testguest":
        for f in ("vmlinuz", "initrd.img"):
            (tmp_path / f).write_bytes(b"x")
        data["kvm"].update(kernel=str(tmp_path / "vmlinuz"), initrd=str(tmp_path / "initrd.img"))
    if pull_secret:
        ps = tmp_path / "pull-secret.json"
        ps.write_text(pull_secret)
        data["pull_secret"] = str(ps)
    return parse_spec(data)


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_render_is_byte_identical_for_the_same_spec(tmp_path):
    spec = make_spec(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    kvm.render(spec, a)
    first = _tree(a)
    kvm.render(spec, a)
    assert _tree(a) == first
    kvm.render(make_spec(tmp_path), b)  # a fresh load of the same spec, another directory
    other = {k: v.replace(str(b).encode(), str(a).encode()) for k, v in _tree(b).items()}
    assert other == first
    assert {"network.xml", "haproxy.cfg", "install-config.yaml"} <= set(first)
    assert sum(k.startswith("domains/") for k in first) == 6


@pytest.mark.skipif(shutil.which("virt-xml-validate") is None or shutil.which("xmllint") is None,
                    reason="virt-xml-validate/xmllint not installed (apt: libvirt-clients libxml2-utils)")
@pytest.mark.parametrize("variant", ["tuned", "kvm-default", "testguest", "qemu"])
def test_every_xml_passes_virt_xml_validate(tmp_path, variant):
    kw = {"tuned": {}, "qemu": {"domain_type": "qemu"}, "testguest": {"guest": "testguest", "domain_type": "qemu"},
          "kvm-default": {"tuning": {"cpu_mode": "default", "disk_cache": "default", "disk_io": "default",
                                     "iothreads": 0, "nic_queues": 1, "memballoon": True}}}[variant]
    out = tmp_path / "out"
    kvm.render(make_spec(tmp_path, **kw), out)
    checks = [(out / "network.xml", "network")] + [(p, "domain") for p in sorted((out / "domains").glob("*.xml"))]
    for path, schema in checks:
        proc = subprocess.run(["virt-xml-validate", str(path), schema], capture_output=True, text=True)
        assert proc.returncode == 0, f"{path.name}: {proc.stdout}{proc.stderr}"


def test_network_dns_dhcp_and_apps_wildcard(tmp_path):
    spec = make_spec(tmp_path)
    root = ET.fromstring(kvm_render.render_network(spec))
    hosts = root.findall("dns/host")
    api = [h for h in hosts if any(n.text.startswith("api") for n in h.findall("hostname"))]
    assert len(api) == 1, "api and api-int must share one <host> (libvirt rejects the same IP twice)"
    assert sorted(n.text for n in api[0].findall("hostname")) == ["api-int.c1.okdbench.test", "api.c1.okdbench.test"]
    assert len({h.get("ip") for h in hosts}) == len(hosts)
    dhcp = {h.get("mac"): (h.get("ip"), h.get("name")) for h in root.findall("ip/dhcp/host")}
    assert dhcp == {m.mac: (str(m.ip), m.name) for m in spec.machines()}
    opts = [o.get("value") for o in root.iter(f"{DNSMASQ}option")]
    assert opts == [f"address=/apps.c1.okdbench.test/{kvm_render.net_plan(spec).ingress_ip}"]
    assert root.find("ip").get("address") == "198.18.20.1"


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")
@pytest.mark.parametrize("workers", [2, 0])
@pytest.mark.parametrize("with_bootstrap", [True, False])
def test_haproxy_config_is_valid_and_routes_right(tmp_path, workers, with_bootstrap):
    spec = make_spec(tmp_path, workers=workers)
    cfg = kvm_render.render_haproxy(spec, with_bootstrap=with_bootstrap)
    path = tmp_path / "haproxy.cfg"
    path.write_text(cfg)
    proc = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sections = {}
    for block in cfg.split("\nbackend ")[1:]:
        name, _, body = block.partition("\n")
        sections[name] = [l.split()[1] for l in body.splitlines() if l.strip().startswith("server ")]
    control = (["bootstrap"] if with_bootstrap else []) + ["master-0", "master-1", "master-2"]
    assert sections["api"] == control and sections["machine-config"] == control
    ingress = [f"worker-{i}" for i in range(workers)] or ["master-0", "master-1", "master-2"]
    assert sections["ingress-http"] == ingress and sections["ingress-https"] == ingress
    assert "option httpchk GET /readyz" in cfg and "check-ssl" in cfg


def _domain(tmp_path, **kw) -> ET.Element:
    spec = make_spec(tmp_path, **kw)
    m = next(m for m in spec.machines() if m.role == "master")
    return ET.fromstring(kvm_render.render_domain(spec, m, tmp_path / "w", kw.get("domain_type", "kvm")))


def test_domain_defaults_are_performance_sane(tmp_path):
    d = _domain(tmp_path)
    assert d.get("type") == "kvm"
    assert d.find("cpu").get("mode") == "host-passthrough"
    drv = d.find("devices/disk/driver")
    assert (drv.get("cache"), drv.get("io"), drv.get("iothread")) == ("none", "native", "1")
    assert d.findtext("iothreads") == "1"
    assert d.find("devices/interface/model").get("type") == "virtio"
    assert d.find("devices/interface/driver").get("queues") == "4"  # one per vCPU
    assert d.find("devices/memballoon").get("model") == "none"
    assert d.find("devices/controller[@type='usb']").get("model") == "none"
    addr = d.find("devices/interface/address")
    assert (addr.get("bus"), addr.get("slot"), addr.get("function")) == ("0x01", "0x00", "0x0")
    fw = d.find("sysinfo[@type='fwcfg']/entry")
    assert fw.get("name") == "opt/com.coreos/config" and fw.get("file").endswith("/ignition/c1-master-0.ign")


def test_kvm_default_tuning_is_expressible(tmp_path):
    d = _domain(tmp_path, tuning={"cpu_mode": "default", "disk_cache": "default", "disk_io": "default",
                                  "iothreads": 0, "nic_queues": 1, "memballoon": True})
    assert d.find("cpu") is None
    drv = d.find("devices/disk/driver")
    assert drv.get("cache") is None and drv.get("io") is None and drv.get("iothread") is None
    assert d.find("iothreads") is None
    assert d.find("devices/interface/driver") is None
    assert d.find("devices/memballoon").get("model") == "virtio"


def test_tcg_gets_cpu_max_not_host_passthrough(tmp_path):
    # host-passthrough is refused under TCG; qemu64 lacks x86-64-v2, which OKD 4.13+ needs.
    assert _domain(tmp_path, domain_type="qemu").find("cpu").get("mode") == "maximum"


def test_testguest_domain_boots_kernel_and_logs_serial_to_a_file(tmp_path):
    d = _domain(tmp_path, guest="testguest", domain_type="qemu")
    assert d.findtext("os/kernel").endswith("vmlinuz") and d.findtext("os/initrd").endswith("initrd.img")
    assert d.find("os/boot") is None
    serial = d.find("devices/serial")
    assert serial.get("type") == "file"
    assert serial.find("source").get("path").endswith("/serial/c1-master-0.serial.log")
    assert d.find("devices/console").get("type") == "file"


def _files(ign: bytes) -> dict[str, tuple[str, int]]:
    cfg = json.loads(ign)
    return {f["path"]: (urllib.parse.unquote(f["contents"]["source"].removeprefix("data:,")), f["mode"])
            for f in cfg["storage"]["files"]}


def test_node_ignition_names_nic_by_mac_and_keeps_role_config(tmp_path):
    spec = make_spec(tmp_path)
    m = spec.machines()[1]
    role = json.dumps({"ignition": {"version": "3.2.0", "config": {"merge": [{"source": "https://api-int:22623/config/master"}]}},
                       "storage": {"files": [{"path": "/etc/keep", "mode": 420, "contents": {"source": "data:,x"}}]}})
    out = kvm_render.node_ignition(spec, m, role.encode())
    assert out == kvm_render.node_ignition(spec, m, role.encode())
    cfg = json.loads(out)
    assert cfg["ignition"]["config"]["merge"][0]["source"].endswith("/config/master")
    files = _files(out)
    assert "/etc/keep" in files
    link, mode = files["/etc/systemd/network/10-okd0.link"]
    assert f"MACAddress={m.mac}" in link and "Name=okd0" in link and mode == 0o644
    keyfile, mode = files["/etc/NetworkManager/system-connections/okd0.nmconnection"]
    assert f"mac-address={m.mac.upper()}" in keyfile and "method=auto" in keyfile and mode == 0o600
    assert "interface-name" not in keyfile  # matched by MAC, not by a name the kernel picks
    assert files["/etc/hostname"][0] == "master-0.c1.okdbench.test\n"


def test_static_ip_keyfile(tmp_path):
    spec = make_spec(tmp_path)
    m = spec.machines()[1]
    keyfile = _files(nic.merge_files(nic.empty_ignition(), nic.network_files(spec, m, static=True)))[
        "/etc/NetworkManager/system-connections/okd0.nmconnection"][0]
    assert f"address1={m.ip}/24,198.18.20.1" in keyfile and "method=manual" in keyfile


def test_install_config_platform_none_counts_and_secret_not_logged(tmp_path, caplog):
    secret = '{"auths":{"quay.io":{"auth":"c2VjcmV0dXNlcjpzM2NyM3RwYXNzd29yZA==","email":"a@b.c"}}}'
    spec = make_spec(tmp_path, pull_secret=secret)
    with caplog.at_level(logging.DEBUG):
        text = render_install_config(spec)
        out = tmp_path / "r"
        kvm.render(spec, out)
    ic = yaml.safe_load(text)
    assert ic["platform"] == {"none": {}}
    assert ic["controlPlane"]["replicas"] == 3 and ic["compute"][0]["replicas"] == 0
    assert ic["networking"]["machineNetwork"] == [{"cidr": "198.18.20.0/24"}]
    assert json.loads(ic["pullSecret"]) == json.loads(secret)
    assert ic["sshKey"].startswith("ssh-ed25519 ")
    assert "s3cr3tpassword" not in caplog.text and "c2VjcmV0dXNlcjpz" not in caplog.text
    assert (out / "install-config.yaml").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("content,needle", [
    ("not json", "pull_secret: "), ('{"x": 1}', "no 'auths' object"),
])
def test_bad_pull_secret_is_one_line(tmp_path, content, needle):
    from provision.spec import SpecError

    with pytest.raises(SpecError) as exc:
        render_install_config(make_spec(tmp_path, pull_secret=content))
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_rendered_xml_is_accepted_by_libvirt_test_driver(tmp_path, libvirt_test_uri):
    import libvirt

    spec = make_spec(tmp_path, guest="testguest", domain_type="qemu")
    conn = libvirt.open(libvirt_test_uri)
    try:
        net = conn.networkDefineXML(kvm_render.render_network(spec))
        assert net.name() == "okd-c1"
        for m in spec.machines():
            # the test driver only knows domain type 'test'; everything else is parsed for real
            xml = kvm_render.render_domain(spec, m, tmp_path, "test").replace('arch="x86_64" machine="q35"', 'arch="i686"')
            assert conn.defineXML(xml).name() == f"c1-{m.name}"
    finally:
        conn.close()


def test_render_cli(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    shutil.copy(EXAMPLE, spec_file)
    text = spec_file.read_text().replace("ssh_public_key: ~/.ssh/id_ed25519.pub", "")
    text = text.replace("domain_type: auto", "domain_type: kvm")
    spec_file.write_text(text)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "okdbench", "render", "--spec", str(spec_file), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert (out / "network.xml").exists() and len(list((out / "domains").glob("*.xml"))) == 6
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("storage_pool: default", "storage_pol: default"))
    proc = subprocess.run([sys.executable, "-m", "okdbench", "render", "--spec", str(bad), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "kvm.storage_pol" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
