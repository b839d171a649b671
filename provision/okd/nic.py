"""Deterministic NIC configuration for ignition: the same interface name on every node, by MAC.

A systemd .link file matched on MACAddress renames the cluster NIC to a fixed name (okd0), and a
NetworkManager keyfile matched by mac-address configures it; neither depends on the name the
kernel or udev would have picked (ens3, enp1s0, ens192...), so no VM must be booted to learn it
before ignition is written. Both platforms use this module.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from provision.spec import ClusterSpec, Machine
from provision.templating import render

IFACE = "okd0"


def _file(path: str, contents: str, mode: int) -> dict[str, Any]:
    # Percent-encoded data URLs are what `butane` emits for small text files; ignition 3.x reads them.
    return {
        "path": path,
        "mode": mode,
        "overwrite": True,
        "contents": {"source": "data:," + urllib.parse.quote(contents, safe="")},
    }


def network_files(spec: ClusterSpec, m: Machine, *, static: bool = False, iface: str = IFACE) -> list[dict[str, Any]]:
    """Ignition storage.files entries: hostname, .link (name by MAC), NM keyfile (match by MAC)."""
    net = spec.network
    gateway = net.gateway or next(net.machine_cidr.hosts())
    keyfile = render("nic.nmconnection.j2", iface=iface, mac=m.mac, static=static, ip=m.ip,
                     prefix=net.machine_cidr.prefixlen, gateway=gateway,
                     dns=[str(d) for d in net.dns_servers] or [str(gateway)], domain=spec.cluster_domain)
    return [
        _file("/etc/hostname", m.hostname + "\n", 0o644),
        _file(f"/etc/systemd/network/10-{iface}.link", render("nic.link.j2", iface=iface, mac=m.mac), 0o644),
        # NetworkManager ignores keyfiles that others can read.
        _file(f"/etc/NetworkManager/system-connections/{iface}.nmconnection", keyfile, 0o600),
    ]


def merge_files(ignition: bytes | str, files: list[dict[str, Any]]) -> bytes:
    """The role's ignition config with `files` added (replacing entries of the same path).

    Works for full configs and for pointer configs (ignition.config.merge): ignition applies the
    local storage section and then merges the remote one. Output is canonical JSON (sorted keys),
    so the same inputs give the same bytes.
    """
    cfg = json.loads(ignition)
    if not isinstance(cfg, dict) or "ignition" not in cfg:
        raise ValueError("not an ignition config (no 'ignition' section)")
    storage = cfg.setdefault("storage", {})
    existing = [f for f in storage.get("files", []) if f.get("path") not in {n["path"] for n in files}]
    storage["files"] = existing + files
    return (json.dumps(cfg, sort_keys=True, separators=(",", ":")) + "\n").encode()


def empty_ignition(version: str = "3.2.0") -> bytes:
    """The role config of a test guest: nothing but the version, before network files are merged."""
    return json.dumps({"ignition": {"version": version}}).encode()

