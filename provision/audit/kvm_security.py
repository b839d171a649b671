"""KVM security rules: pure functions over a domain's XML and what the host says about its isolation.

collect_kvm.collect_security gathers KvmSecurityHost (libvirt's security model and DAC label,
the daemon config files when libvirtd is local, file modes); nothing here talks to libvirt or
reads files. Host-wide settings are reported once per VM: every VM on that host is exposed.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable

from provision.audit import libvirt_conf
from provision.audit.kvm import KvmVm, disks
from provision.audit.rules import Finding

MAC_MODELS = {"selinux", "apparmor"}
IGNITION_FWCFG = "opt/com.coreos/config"
ROOT_NAMES = {"root", "+0", "0"}


@dataclass(frozen=True)
class FileFacts:
    """A host file's ownership and mode (os.stat, or a libvirt volume's <permissions>)."""

    mode: int
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class KvmSecurityHost:
    uri: str
    security_model: str  # libvirt's primary security driver: selinux, apparmor, none (test driver: testSecurity)
    dac_label: str | None = None  # capabilities' DAC <baselabel type='kvm'|'qemu'>, e.g. '+64055:+64055'
    local: bool = False  # libvirtd on this machine: its config files and file modes were read
    qemu_conf: dict[str, str] | None = None  # libvirt_conf.parse of qemu.conf (None: not read)
    daemon_confs: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> libvirtd.conf / virtproxyd.conf
    tcp_sockets: tuple[str, ...] = ()  # enabled systemd socket units that listen on TCP without TLS
    qemu_gids: frozenset[int] = frozenset({0})  # groups allowed to read ignition: root and QEMU's
    files: dict[str, FileFacts] = field(default_factory=dict)  # ignition and disk paths that exist on the host
    volumes: dict[str, FileFacts] = field(default_factory=dict)  # '<pool>/<volume>' -> its libvirt permissions
    joined: frozenset[str] = frozenset()  # VM names whose Kubernetes node has joined the cluster
    unread: tuple[str, ...] = ()  # config files that exist but could not be read (permissions)


def _f(vm: KvmVm, rule: str, observed: str, subject: str = "") -> Finding:
    return Finding(rule, vm.name, observed, vm.role, vm.node, subject)


# ---------------------------------------------------------------------------- helpers (also used by the collector)

def ignition_files(root: ET.Element) -> list[str]:
    """Paths handed to the guest through fw_cfg as its ignition config."""
    return [e.get("file", "") for e in root.findall("sysinfo[@type='fwcfg']/entry")
            if e.get("name") == IGNITION_FWCFG and e.get("file")]


def disk_key(disk: ET.Element) -> tuple[str, str] | None:
    """('file', path) or ('volume', '<pool>/<volume>') of a disk's image; None for network/other disks."""
    src = disk.find("source")
    if src is None:
        return None
    if disk.get("type") == "volume" and src.get("pool") and src.get("volume"):
        return "volume", f"{src.get('pool')}/{src.get('volume')}"
    path = src.get("file") or src.get("dev")
    return ("file", path) if path else None


def _is_root(label: str) -> bool:
    return label.split(":", 1)[0].strip() in ROOT_NAMES


# ---------------------------------------------------------------------------- rules

def check_svirt(vm: KvmVm, host: KvmSecurityHost) -> list[Finding]:
    configured = (host.qemu_conf or {}).get("security_driver")
    if configured is not None and configured.strip().lower() == "none":
        return [_f(vm, "kvm.svirt", 'qemu.conf security_driver = "none": no sVirt confinement for any VM')]
    if host.security_model not in MAC_MODELS:
        return [_f(vm, "kvm.svirt", f"host security driver {host.security_model!r}: no SELinux/AppArmor on this host, "
                                    "QEMU processes are not confined")]
    for label in vm.xml.findall("seclabel"):
        model = label.get("model")
        if label.get("type") == "none" and model != "dac":  # libvirt fills in the host's model (selinux, apparmor, none)
            return [_f(vm, "kvm.svirt", f"<seclabel type='none'{f' model={model!r}' if model else ''}/>: "
                                        "confinement disabled for this domain")]
    return []


def check_qemu_root(vm: KvmVm, host: KvmSecurityHost) -> list[Finding]:
    for label in vm.xml.findall("seclabel[@model='dac']"):
        text = (label.findtext("label") or "").strip()
        if label.get("type") == "static" and text and _is_root(text):
            return [_f(vm, "kvm.qemu-root", f"domain DAC label {text}: this QEMU runs as root")]
    user = (host.qemu_conf or {}).get("user")
    if user is not None and _is_root(user):
        return [_f(vm, "kvm.qemu-root", f'qemu.conf user = "{user}": every QEMU on this host runs as root')]
    if host.dac_label and _is_root(host.dac_label):
        return [_f(vm, "kvm.qemu-root", f"libvirt's DAC base label {host.dac_label}: QEMU runs as root")]
    return []


def _loopback(address: str) -> bool:
    if address in ("localhost", "localhost6"):
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: resolves to whatever the network says


def _listen(g: ET.Element, conf: dict[str, str]) -> str | None:
    """Where a graphics device listens: an address, 'network <name>', or None (socket / nowhere)."""
    kind = g.get("type", "")
    listens = g.findall("listen")
    for lst in listens:
        ltype = lst.get("type", "address")
        if ltype == "address":
            return lst.get("address") or g.get("listen") or conf.get(f"{kind}_listen", "127.0.0.1")
        if ltype == "network":
            return f"network {lst.get('network', '?')}"
        return None  # socket or none
    if g.get("listen"):
        return g.get("listen")
    if kind == "vnc" and libvirt_conf.flag(conf, "vnc_auto_unix_socket", False):
        return None
    return conf.get(f"{kind}_listen", "127.0.0.1")


def check_console_exposed(vm: KvmVm, host: KvmSecurityHost) -> list[Finding]:
    conf = host.qemu_conf or {}
    out = []
    for g in vm.xml.findall("devices/graphics"):
        kind = g.get("type", "")
        if kind not in ("vnc", "spice"):
            continue  # sdl/egl-headless/dbus stay on the host
        where = _listen(g, conf)
        if where is None or (not where.startswith("network ") and _loopback(where)):
            continue
        if kind == "vnc":
            tls = libvirt_conf.flag(conf, "vnc_tls", False)
            auth = bool(g.get("passwd")) or bool(conf.get("vnc_password")) or \
                (tls and libvirt_conf.flag(conf, "vnc_tls_x509_verify", False))
        else:
            tls = libvirt_conf.flag(conf, "spice_tls", False) and g.get("defaultMode") == "secure"
            auth = bool(g.get("passwd")) or bool(conf.get("spice_password"))
        if tls and auth:
            continue
        missing = [w for w, ok in (("no TLS", tls), ("no password or client certificate", auth)) if not ok]
        note = "" if host.qemu_conf is not None else " (qemu.conf not read: libvirt defaults assumed)"
        out.append(_f(vm, "kvm.console-exposed", f"{kind} on {where}: {' and '.join(missing)}{note}", kind))
    return out


def check_libvirt_tcp(vm: KvmVm, host: KvmSecurityHost) -> list[Finding]:
    reasons = []
    if host.uri.split(":", 1)[0].endswith("+tcp"):
        reasons.append(f"this audit connected through {host.uri.split('://', 1)[0]}://")
    for path, conf in sorted(host.daemon_confs.items()):
        if libvirt_conf.flag(conf, "listen_tcp", False):
            auth = conf.get("auth_tcp", "sasl")
            reasons.append(f"{path}: listen_tcp = 1, auth_tcp = \"{auth}\""
                           + (" (no authentication at all)" if auth == "none" else ""))
        if libvirt_conf.flag(conf, "listen_tls", False) and libvirt_conf.flag(conf, "tls_no_verify_certificate", False) \
                and conf.get("auth_tls", "none") == "none":
            reasons.append(f"{path}: listen_tls with tls_no_verify_certificate = 1 and auth_tls = \"none\" "
                           "(any TLS client is accepted)")
    reasons += [f"systemd socket {unit} enabled" for unit in host.tcp_sockets]
    return [_f(vm, "kvm.libvirt-tcp", "; ".join(reasons))] if reasons else []


def check_ignition_readable(vm: KvmVm, host: KvmSecurityHost) -> list[Finding]:
    out = []
    for path in ignition_files(vm.xml):
        facts = host.files.get(path)
        if facts is None:
            continue  # gone (good) or not on this machine
        mode = facts.mode & 0o777
        if mode & 0o004:
            out.append(_f(vm, "kvm.ignition-readable", f"{path} mode {mode:04o}: world-readable", "ignition"))
        elif mode & 0o040 and facts.gid is not None and facts.gid not in host.qemu_gids:
            out.append(_f(vm, "kvm.ignition-readable", f"{path} mode {mode:04o}: readable by group {facts.gid}",
                          "ignition"))
    return out


def check_ignition_left(vm: KvmVm, host: KvmSecurityHost) -> list[Finding]:
    if vm.name not in host.joined:
        return []  # still installing, or node unknown: ignition may still be needed
    return [_f(vm, "kvm.ignition-left", f"{path} still on the host and in the domain's fw_cfg after the node joined",
               "ignition")
            for path in ignition_files(vm.xml) if path in host.files]


def check_volume_permissions(vm: KvmVm, host: KvmSecurityHost) -> list[Finding]:
    out = []
    for d in disks(vm.xml):
        key = disk_key(d)
        if key is None:
            continue
        facts = (host.volumes if key[0] == "volume" else host.files).get(key[1])
        if facts is None:
            continue
        mode = facts.mode & 0o777
        if mode & 0o006:
            what = " and ".join(w for w, bit in (("readable", 0o004), ("writable", 0o002)) if mode & bit)
            target = d.find("target")
            out.append(_f(vm, "kvm.volume-permissions", f"{key[1]} mode {mode:04o}: {what} by every host user",
                          target.get("dev", "?") if target is not None else "?"))
    return out


def check_secure_boot(vm: KvmVm, host: KvmSecurityHost) -> list[Finding]:
    os_el = vm.xml.find("os")
    if os_el is None:
        return [_f(vm, "kvm.secure-boot", "no <os> element: BIOS firmware")]
    loader = os_el.find("loader")
    efi = os_el.get("firmware") == "efi" or (loader is not None and loader.get("type") == "pflash")
    feature = os_el.find("firmware/feature[@name='secure-boot']")
    secure = (feature is not None and feature.get("enabled") == "yes") or \
        (loader is not None and loader.get("secure") == "yes")
    if efi and secure:
        return []
    return [_f(vm, "kvm.secure-boot", "UEFI without Secure Boot" if efi else "BIOS firmware (no UEFI, no Secure Boot)")]


def check_vtpm(vm: KvmVm, host: KvmSecurityHost) -> list[Finding]:
    return [] if vm.xml.find("devices/tpm") is not None else [_f(vm, "kvm.vtpm", "no <tpm> device")]


RULE_FUNCTIONS: dict[str, Callable[[KvmVm, KvmSecurityHost], list[Finding]]] = {
    "kvm.svirt": check_svirt,
    "kvm.qemu-root": check_qemu_root,
    "kvm.console-exposed": check_console_exposed,
    "kvm.libvirt-tcp": check_libvirt_tcp,
    "kvm.ignition-readable": check_ignition_readable,
    "kvm.ignition-left": check_ignition_left,
    "kvm.volume-permissions": check_volume_permissions,
    "kvm.secure-boot": check_secure_boot,
    "kvm.vtpm": check_vtpm,
}


def audit_kvm_security(vms: list[KvmVm], host: KvmSecurityHost) -> list[Finding]:
    return [f for vm in vms for check in RULE_FUNCTIONS.values() for f in check(vm, host)]
