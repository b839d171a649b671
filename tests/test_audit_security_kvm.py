"""KVM security rules against a real libvirtd (qemu:///system): domains defined (never started) from
kvm-security-bad.xml / kvm-security-good.xml, ignition and disk files and a pool volume with real modes,
and host config files the test writes, read through kvm.host_config exactly as on a real host.

Each rule must fire on the bad domain and stay quiet on the good one. The one fact this machine
cannot provide is an SELinux/AppArmor host: for the quiet side of kvm.svirt the host's security
model (as libvirt reported it) is replaced by 'apparmor'; everything else is what libvirt said.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest

from provision.audit import collect_kvm, kvm_security, libvirt_conf
from provision.audit.collect_kvm_security import collect_security
from provision.audit.rules import RULES
from provision.kvm.render import XMLNS
from provision.kvm.scrub import clear_ignition
from provision.spec import KvmHostConfig, parse_spec

DATA = Path(__file__).parent / "data" / "audit"
# Spelled out, not read from the table: deleting a rule must fail a test.
KVM_SECURITY_RULES = ["kvm.svirt", "kvm.qemu-root", "kvm.console-exposed", "kvm.libvirt-tcp", "kvm.ignition-readable",
                      "kvm.ignition-left", "kvm.volume-permissions", "kvm.secure-boot", "kvm.vtpm"]
CANARY = "vnc-canary-Q7w"  # a console password in the bad qemu.conf: must never leave the parser

libvirt.registerErrorHandler(lambda ctx, err: None, None)

pytestmark = pytest.mark.needs_libvirtd


def write_host_config(d: Path, kind: str) -> KvmHostConfig:
    """qemu.conf, libvirtd.conf and an enabled-units folder as a libvirt host has them."""
    d.mkdir(parents=True, exist_ok=True)
    wants = d / "systemd" / "sockets.target.wants"
    wants.mkdir(parents=True)
    if kind == "bad":
        (d / "qemu.conf").write_text(f'# QEMU as root, VNC password but no TLS\nuser = "root"\ngroup = "root"\n'
                                     f'vnc_password = "{CANARY}"\n')
        (d / "libvirtd.conf").write_text('listen_tcp = 1\nauth_tcp = "none"   # no SASL\n')
        (wants / "libvirtd-tcp.socket").write_text("[Socket]\nListenStream=16509\n")
    else:
        (d / "qemu.conf").write_text('user = "libvirt-qemu"\ngroup = "libvirt-qemu"\nvnc_tls = 1\n'
                                     'vnc_tls_x509_verify = 1\nsecurity_driver = [ "apparmor" ]\n')
        (d / "libvirtd.conf").write_text("listen_tcp = 0\nlisten_tls = 1\n")
    return KvmHostConfig(qemu_conf=d / "qemu.conf", libvirtd_conf=d / "libvirtd.conf",
                         virtproxyd_conf=d / "virtproxyd.conf", systemd_dir=d / "systemd")


def _file(path: Path, mode: int, data: bytes = b"") -> str:
    path.write_bytes(data)
    path.chmod(mode)
    return str(path)


@dataclasses.dataclass
class Audit:
    bad: list
    good_before_scrub: list
    good: list
    cleared: list[str]
    good_xml: str
    ignition: dict[str, str]
    hosts: dict[str, kvm_security.KvmSecurityHost]


@contextlib.contextmanager
def _pool(conn: libvirt.virConnect, name: str, target: Path):
    pool = conn.storagePoolCreateXML(f"<pool type='dir'><name>{name}</name><target><path>{target}</path></target></pool>", 0)
    try:
        yield pool
    finally:
        for vol in pool.listAllVolumes():
            with contextlib.suppress(libvirt.libvirtError):
                vol.delete(0)
        with contextlib.suppress(libvirt.libvirtError):
            pool.destroy()


def _volume(pool, name: str, mode: str) -> str:
    pool.createXML(f"<volume><name>{name}</name><capacity unit='KiB'>64</capacity><target><format type='raw'/>"
                   f"<permissions><mode>{mode}</mode><owner>0</owner><group>0</group></permissions></target></volume>", 0)
    return name


@pytest.fixture(scope="module")
def audited(libvirt_uri, tmp_path_factory) -> Audit:
    tag = f"{os.getpid()}-{secrets.token_hex(2)}"
    cluster = f"security18-{tag}"
    tmp = tmp_path_factory.mktemp("security18")
    tmp.chmod(0o755)
    files = {"bad": {"IGN": _file(tmp / "bad.ign", 0o644, b'{"pull-secret": "x"}'), "DISK": _file(tmp / "bad.img", 0o666)},
             "good": {"IGN": _file(tmp / "good.ign", 0o640, b'{"pull-secret": "x"}'), "DISK": _file(tmp / "good.img", 0o600)}}
    conf = {k: write_host_config(tmp / f"host-{k}", k) for k in ("bad", "good")}
    conn = libvirt.open(libvirt_uri)
    names = {k: f"security18-{k}-{tag}" for k in ("bad", "good")}
    doms = []
    try:
        (tmp / "pool").mkdir()
        with _pool(conn, f"security18-pool-{tag}", tmp / "pool") as pool:
            for kind in ("bad", "good"):
                root = ET.parse(DATA / f"kvm-security-{kind}.xml").getroot()
                root.find("name").text = names[kind]
                root.find("sysinfo/entry").set("file", files[kind]["IGN"])
                root.find("devices/disk/source").set("file", files[kind]["DISK"])
                vol_src = root.find("devices/disk[@type='volume']/source")
                vol_src.set("pool", pool.name())
                vol_src.set("volume", _volume(pool, f"{kind}.img", "0644" if kind == "bad" else "0600"))
                for label in root.findall("seclabel[@model='HOSTMODEL']"):
                    label.set("model", conn.getSecurityModel()[0] or "none")
                if kind == "good":  # provisioned by okdbench: scrub may touch it
                    meta = ET.SubElement(root, "metadata")
                    ET.SubElement(meta, f"{{{XMLNS}}}cluster", {"name": cluster, "kind": "domain", "node": "master-0"})
                ET.register_namespace("okdbench", XMLNS)
                doms.append(conn.defineXML(ET.tostring(root, encoding="unicode")))

            def audit(kind: str, joined: bool) -> tuple[list, kvm_security.KvmSecurityHost]:
                inv = collect_kvm.collect(conn, cluster, [], names=[names[kind]], roles={names[kind]: "master"})
                host = collect_security(conn, inv.vms, conf[kind], frozenset({names[kind]}) if joined else frozenset())
                return kvm_security.audit_kvm_security(inv.vms, host), host

            bad, bad_host = audit("bad", joined=True)
            before, _ = audit("good", joined=True)
            spec = parse_spec({"name": cluster, "base_domain": "example.test", "platform": "kvm",
                               "network": {"machine_cidr": "198.18.90.0/24"},
                               "nodes": [{"role": "master", "count": 1, "vcpu": 1, "memory": "256MiB", "disk": "1GiB"}],
                               "kvm": {"uri": libvirt_uri}})
            cleared = clear_ignition(conn, spec)
            good, good_host = audit("good", joined=True)
            # The one substitution (see module docstring): an AppArmor host.
            confined = dataclasses.replace(good_host, security_model="apparmor")
            inv = collect_kvm.collect(conn, cluster, [], names=[names["good"]], roles={names["good"]: "master"})
            good = kvm_security.audit_kvm_security(inv.vms, confined)
            good_xml = conn.lookupByName(names["good"]).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        for dom in doms:
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        conn.close()
    return Audit(bad, before, good, cleared, good_xml, {k: v["IGN"] for k, v in files.items()},
                 {"bad": bad_host, "good": good_host})


def _fired(findings) -> set[str]:
    return {f.rule for f in findings}


@pytest.mark.parametrize("rule", KVM_SECURITY_RULES)
def test_rule_fires_on_bad_and_not_on_good_libvirtd(audited, rule):
    assert rule in _fired(audited.bad), f"{rule} did not fire on the bad domain: {[f.line() for f in audited.bad]}"
    assert rule not in _fired(audited.good), f"{rule} fired on the good domain: {[f.line() for f in audited.good]}"


def test_every_kvm_security_rule_has_a_function():
    assert set(kvm_security.RULE_FUNCTIONS) == set(KVM_SECURITY_RULES) == {
        r for r, rule in RULES.items() if r.startswith("kvm.") and rule.kind == "security"}


def test_evidence_is_what_libvirt_and_the_files_say(audited):
    by_rule = {f.rule: f for f in audited.bad}
    assert "confinement disabled" in by_rule["kvm.svirt"].observed or "not confined" in by_rule["kvm.svirt"].observed
    assert by_rule["kvm.qemu-root"].observed == "domain DAC label +0:+0: this QEMU runs as root"
    assert by_rule["kvm.console-exposed"].observed == "vnc on 0.0.0.0: no TLS"  # a password is set, TLS is not
    assert 'listen_tcp = 1, auth_tcp = "none" (no authentication at all)' in by_rule["kvm.libvirt-tcp"].observed
    assert "systemd socket libvirtd-tcp.socket enabled" in by_rule["kvm.libvirt-tcp"].observed
    assert by_rule["kvm.ignition-readable"].observed.endswith("mode 0644: world-readable")
    perms = sorted(f.observed for f in audited.bad if f.rule == "kvm.volume-permissions")
    assert len(perms) == 2 and any("bad.img mode 0644: readable" in p for p in perms) \
        and any("mode 0666: readable and writable" in p for p in perms)
    # libvirt's own DAC label for QEMU (qemu.conf as libvirtd loaded it) is not root on this host
    assert audited.hosts["good"].dac_label and not audited.hosts["good"].dac_label.startswith("+0:")


def test_provision_scrub_clears_ignition_from_the_host(audited):
    assert "kvm.ignition-left" in _fired(audited.good_before_scrub)
    assert [c.split(": ", 1)[1] for c in audited.cleared] == [audited.ignition["good"]]
    assert not Path(audited.ignition["good"]).exists() and Path(audited.ignition["bad"]).exists()
    assert "fwcfg" not in audited.good_xml and "<tpm" in audited.good_xml  # the rest of the domain is kept


def test_console_password_never_leaves_the_parser(audited):
    host = audited.hosts["bad"]
    assert host.qemu_conf["vnc_password"] == libvirt_conf.SET
    assert CANARY not in repr(host) and all(CANARY not in f.line() for f in audited.bad)


# ---------------------------------------------------------------------------- pure rule details

def _vm(xml: str, name: str = "t") -> kvm_security.KvmVm:
    return kvm_security.KvmVm.from_xml(f"<domain type='qemu'><name>{name}</name>{xml}</domain>", "master")


HOST = kvm_security.KvmSecurityHost(uri="qemu:///system", security_model="selinux", qemu_conf={})


@pytest.mark.parametrize("graphics,conf,fires", [
    ("<graphics type='vnc' listen='127.0.0.1'/>", {}, False),
    ("<graphics type='vnc'><listen type='address' address='::1'/></graphics>", {}, False),
    ("<graphics type='vnc'/>", {}, False),  # qemu.conf default vnc_listen is 127.0.0.1
    ("<graphics type='vnc'/>", {"vnc_listen": "0.0.0.0"}, True),
    ("<graphics type='vnc'/>", {"vnc_listen": "0.0.0.0", "vnc_auto_unix_socket": "1"}, False),
    ("<graphics type='vnc'><listen type='socket'/></graphics>", {"vnc_listen": "0.0.0.0"}, False),
    ("<graphics type='vnc'><listen type='network' network='default'/></graphics>", {}, True),
    ("<graphics type='vnc' listen='0.0.0.0' passwd='x'/>", {"vnc_tls": "1"}, False),
    ("<graphics type='vnc' listen='0.0.0.0'/>", {"vnc_tls": "1"}, True),  # TLS but anyone may connect
    ("<graphics type='spice' listen='0.0.0.0' passwd='x' defaultMode='secure'/>", {"spice_tls": "1"}, False),
    ("<graphics type='spice' listen='0.0.0.0' passwd='x'/>", {"spice_tls": "1"}, True),  # plaintext channels allowed
    ("<graphics type='egl-headless'/>", {}, False),
])
def test_console_exposure(graphics, conf, fires):
    host = dataclasses.replace(HOST, qemu_conf=conf)
    assert bool(kvm_security.check_console_exposed(_vm(f"<devices>{graphics}</devices>"), host)) is fires


def test_libvirt_tcp_from_the_connection_and_tls_without_verification():
    vm = _vm("")
    assert "qemu+tcp://" in kvm_security.check_libvirt_tcp(vm, dataclasses.replace(HOST, uri="qemu+tcp://h/system"))[0].observed
    assert not kvm_security.check_libvirt_tcp(vm, dataclasses.replace(HOST, uri="qemu+tls://h/system"))
    lax = {"/etc/libvirt/libvirtd.conf": {"listen_tls": "1", "tls_no_verify_certificate": "1"}}
    assert "any TLS client" in kvm_security.check_libvirt_tcp(vm, dataclasses.replace(HOST, daemon_confs=lax))[0].observed


def test_security_driver_none_in_qemu_conf_fires_even_on_a_confined_host():
    host = dataclasses.replace(HOST, qemu_conf={"security_driver": "none"})
    assert "security_driver" in kvm_security.check_svirt(_vm(""), host)[0].observed
    assert not kvm_security.check_svirt(_vm(""), HOST)


def test_ignition_readable_by_a_foreign_group_only():
    xml = "<sysinfo type='fwcfg'><entry name='opt/com.coreos/config' file='/x.ign'/></sysinfo>"
    for gid, fires in ((0, False), (64055, False), (100, True)):
        host = dataclasses.replace(HOST, qemu_gids=frozenset({0, 64055}),
                                   files={"/x.ign": kvm_security.FileFacts(mode=0o100640, uid=0, gid=gid)})
        assert bool(kvm_security.check_ignition_readable(_vm(xml), host)) is fires


def test_conf_parser_reads_libvirt_syntax():
    text = ('# comment\nuser = "root"  # trailing\n#group = "x"\nsecurity_driver = [\n  "selinux",\n  "apparmor" ]\n'
            'vnc_tls=1\nspice_password = "s3cret"\nunrelated = "kept out"\n')
    assert libvirt_conf.parse(text) == {"user": "root", "security_driver": "selinux,apparmor", "vnc_tls": "1",
                                        "spice_password": libvirt_conf.SET}


def test_unreadable_or_huge_config_is_one_line(tmp_path):
    big = tmp_path / "qemu.conf"
    big.write_bytes(b"#" * (libvirt_conf.MAX_BYTES + 2))
    with pytest.raises(libvirt_conf.ConfigFileError, match=r"qemu.conf: larger than .* \(check kvm.host_config\)"):
        libvirt_conf.read(big)
    assert libvirt_conf.read(tmp_path / "absent.conf") is None
