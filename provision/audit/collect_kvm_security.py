"""Gather KvmSecurityHost: libvirt's security model and DAC label, and (libvirtd on this machine) its config files and file modes."""

from __future__ import annotations

import grp
import logging
import os
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt

from provision.audit import kvm, libvirt_conf
from provision.audit.kvm_security import FileFacts, KvmSecurityHost, disk_key, ignition_files
from provision.spec import KvmHostConfig

log = logging.getLogger("okdbench.audit.kvm")

TCP_SOCKET_UNITS = ("libvirtd-tcp.socket", "virtproxyd-tcp.socket")


def is_local(uri: str) -> bool:
    """A libvirtd on this machine: its files are ours to read (same test as the storage mounts)."""
    parsed = urllib.parse.urlsplit(uri)
    return parsed.hostname in (None, "", "localhost") and parsed.scheme.split("+")[0] in ("qemu", "test")


def dac_base_label(capabilities: str) -> str | None:
    """The DAC <baselabel> QEMU processes get (type 'kvm' preferred, then 'qemu'), from capabilities XML."""
    root = ET.fromstring(capabilities)
    for model in root.findall("host/secmodel"):
        if model.findtext("model") == "dac":
            labels = {b.get("type"): (b.text or "").strip() for b in model.findall("baselabel")}
            return labels.get("kvm") or labels.get("qemu") or next(iter(labels.values()), None)
    return None


def _gid(value: str | None) -> int | None:
    if not value:
        return None
    value = value.strip()
    if value.lstrip("+").isdigit():
        return int(value.lstrip("+"))
    try:
        return grp.getgrnam(value).gr_gid
    except KeyError:
        return None


def _stat(path: str) -> FileFacts | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return FileFacts(mode=st.st_mode, uid=st.st_uid, gid=st.st_gid)


def _volume_facts(conn: libvirt.virConnect, pool: str, volume: str, local: bool) -> FileFacts | None:
    try:
        vol = conn.storagePoolLookupByName(pool).storageVolLookupByName(volume)
        root = ET.fromstring(vol.XMLDesc())
    except libvirt.libvirtError:
        return None  # pool inactive or volume gone: nothing to judge
    perms = root.find("target/permissions")
    mode = perms.findtext("mode") if perms is not None else None
    if mode:
        owner, group = perms.findtext("owner"), perms.findtext("group")
        return FileFacts(mode=int(mode, 8), uid=int(owner) if owner and owner.isdigit() else None,
                         gid=int(group) if group and group.isdigit() else None)
    return _stat(vol.path()) if local else None


def _resolve(path: Path, base: Path | None) -> Path:
    return path if path.is_absolute() or base is None else base / path


def _read_conf(path: Path, unread: list[str]) -> dict[str, str] | None:
    """A config file's keys; one it cannot read (0600 root on Debian, audit run as another user) is
    said once and the rules fall back to what libvirt itself reports: the audit goes on."""
    try:
        return libvirt_conf.read(path)
    except libvirt_conf.ConfigFileError as exc:
        log.warning("audit: kvm.host_config: %s; the security rules judge this host without it", exc)
        unread.append(str(path))
        return None


def collect_security(conn: libvirt.virConnect, vms: list[kvm.KvmVm], config: KvmHostConfig | None = None,
                     joined: frozenset[str] = frozenset(), base_dir: Path | None = None) -> KvmSecurityHost:
    """Security facts of the host serving conn, for these VMs. joined: VMs whose node is in the cluster."""
    config = config or KvmHostConfig()
    uri = conn.getURI()
    model = conn.getSecurityModel()[0] or "none"
    try:
        dac = dac_base_label(conn.getCapabilities())
    except (libvirt.libvirtError, ET.ParseError) as exc:
        log.debug("capabilities: %s", exc)
        dac = None
    local = is_local(uri)
    qemu_conf, daemons, sockets, files, unread = None, {}, (), {}, []
    if local:
        qemu_path = _resolve(config.qemu_conf, base_dir)
        qemu_conf = _read_conf(qemu_path, unread)
        if qemu_conf is None and str(qemu_path) not in unread:
            qemu_conf = {}  # no qemu.conf: libvirt's defaults apply, and they are known
        for path in (config.libvirtd_conf, config.virtproxyd_conf):
            conf = _read_conf(_resolve(path, base_dir), unread)
            if conf is not None:
                daemons[str(path)] = conf
        wants = _resolve(config.systemd_dir, base_dir) / "sockets.target.wants"
        sockets = tuple(u for u in TCP_SOCKET_UNITS if (wants / u).exists())
        for vm in vms:
            paths = ignition_files(vm.xml) + [k[1] for d in kvm.disks(vm.xml) if (k := disk_key(d)) and k[0] == "file"]
            for p in paths:
                if (facts := _stat(p)) is not None:
                    files[p] = facts
    else:
        log.info("audit: libvirtd at %s is remote: its qemu.conf/libvirtd.conf and file modes are not read", uri)
    volumes = {}
    for vm in vms:
        for d in kvm.disks(vm.xml):
            key = disk_key(d)
            if key and key[0] == "volume" and key[1] not in volumes:
                pool, _, volume = key[1].partition("/")
                if (facts := _volume_facts(conn, pool, volume, local)) is not None:
                    volumes[key[1]] = facts
    gids = {0} | {g for g in (_gid(dac.split(":", 1)[1] if dac and ":" in dac else None),
                              _gid((qemu_conf or {}).get("group"))) if g is not None}
    return KvmSecurityHost(uri=uri, security_model=model, dac_label=dac, local=local, qemu_conf=qemu_conf,
                           daemon_confs=daemons, tcp_sockets=sockets, qemu_gids=frozenset(gids), files=files,
                           volumes=volumes, joined=joined, unread=tuple(unread))
