"""The vSphere provisioning plan: every VM, where it goes, what it gets. Pure; no vCenter contact.

The same functions produce the real extraConfig values (provision) and the plan shown to people
(render). In the plan, ignition payloads appear only as source, size and hash: the bootstrap
ignition carries cluster secrets and even master/worker pointers are not for a JSON report.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provision.spec import ClusterSpec, Machine
from provision.templating import render
from provision.vsphere.inventory import Paths, paths, vm_name

IGNITION_KEY = "guestinfo.ignition.config.data"
ENCODING_KEY = "guestinfo.ignition.config.data.encoding"
KARGS_KEY = "guestinfo.afterburn.initrd.network-kargs"
# okdbench's own marks: destroy deletes only VMs that carry this cluster's name.
CLUSTER_KEY = "okdbench.cluster"
NODE_KEY = "okdbench.node"

# Keys whose values may be shown; ignition data is summarised instead.
# VM hardening from VMware's security configuration guide, the values the security audit checks
# (provision/audit/security_rules.py): okdbench's own VMs pass it.
HARDENING_CONFIG = {
    "isolation.tools.copy.disable": "TRUE",
    "isolation.tools.paste.disable": "TRUE",
    "isolation.device.connectable.disable": "TRUE",
    "isolation.tools.diskShrink.disable": "TRUE",
    "isolation.tools.diskWiper.disable": "TRUE",
    "tools.setInfo.sizeLimit": "1048576",
    "RemoteDisplay.maxConnections": "1",
    "log.rotateSize": "2048000",
    "log.keepOld": "10",
}
STATIC_CONFIG = {
    "disk.EnableUUID": "TRUE",  # stable /dev/disk/by-id for the kubelet and CSI
    "stealclock.enable": "TRUE",  # guests account hypervisor steal time: honest CPU numbers
    **HARDENING_CONFIG,
}


def ignition_file(role: str) -> str:
    return f"{role}.ign"


def pointer_ignition(url: str, sha512: str | None) -> str:
    """A tiny ignition that merges the full bootstrap ignition from url (guestinfo holds ~64 KiB at most)."""
    return render("vsphere-pointer.ign.j2", url=url, sha512=sha512)


def network_kargs(spec: ClusterSpec, machine: Machine) -> str:
    net = spec.network
    vs = spec.vsphere
    assert vs is not None
    gateway = net.gateway or next(net.machine_cidr.hosts())
    return render(
        "vsphere-network-kargs.j2", ip=machine.ip, gateway=gateway, netmask=net.machine_cidr.netmask, hostname=machine.hostname,
        interface=vs.interface, dns_servers=net.dns_servers).strip()


def ownership_marks(spec: ClusterSpec, machine: Machine) -> dict[str, str]:
    """The extraConfig keys by which destroy recognises this cluster's VMs. Set in the clone request
    itself, so a VM that exists at all is already destroy's to remove."""
    return {CLUSTER_KEY: spec.name, NODE_KEY: machine.name}


def extra_config(spec: ClusterSpec, machine: Machine, ignition: bytes | None) -> dict[str, str]:
    """The VM's extraConfig. ignition=None leaves the ignition keys out (render without files)."""
    cfg = dict(STATIC_CONFIG)
    cfg.update(ownership_marks(spec, machine))
    if ignition is not None:
        cfg[IGNITION_KEY] = base64.b64encode(ignition).decode()
        cfg[ENCODING_KEY] = "base64"
    if spec.network.static_ips:
        cfg[KARGS_KEY] = network_kargs(spec, machine)
    return cfg


@dataclass(frozen=True)
class VmPlan:
    name: str
    machine: Machine
    path: str

    @property
    def memory_mib(self) -> int:
        return self.machine.memory_mib

    @property
    def disk_gib(self) -> int:
        return -(-self.machine.disk // 2**30)


def vm_plans(spec: ClusterSpec) -> list[VmPlan]:
    p = paths(spec)
    return [VmPlan(name=vm_name(spec, m.name), machine=m, path=p.vm(vm_name(spec, m.name))) for m in spec.machines()]


def _digest(data: bytes) -> dict[str, Any]:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def ignition_summary(spec: ClusterSpec, role: str, ignition_dir: Path | None, bootstrap_url: str | None) -> dict[str, Any]:
    source = ignition_file(role)
    out: dict[str, Any] = {"source": source}
    full = ignition_dir / source if ignition_dir else None
    if role == "bootstrap":
        out["pointer_to"] = bootstrap_url or "served by okdbench at provision time (vsphere.ignition_url unset)"
        if full is not None and full.exists():
            out["merged_file"] = _digest(full.read_bytes())
            pointer = pointer_ignition(bootstrap_url or "http://okdbench.invalid/bootstrap.ign",
                                       hashlib.sha512(full.read_bytes()).hexdigest())
            out["guestinfo_bytes"] = len(base64.b64encode(pointer.encode()))
    elif full is not None and full.exists():
        data = full.read_bytes()
        out.update(_digest(data))
        out["guestinfo_bytes"] = len(base64.b64encode(data))
    else:
        out["status"] = "not yet generated (openshift-install create ignition-configs runs at provision)"
    return out


def build_plan(spec: ClusterSpec, ignition_dir: Path | None = None) -> dict[str, Any]:
    vs = spec.vsphere
    assert vs is not None
    p: Paths = paths(spec)
    vms = []
    for plan in vm_plans(spec):
        m = plan.machine
        cfg = extra_config(spec, m, ignition=None)
        vms.append({
            "name": plan.name,
            "node": m.name,
            "role": m.role,
            "path": plan.path,
            "hostname": m.hostname,
            "template": p.template,
            "folder": p.folder,
            "resource_pool": p.resource_pool,
            "datastore": p.datastore,
            "network": p.network,
            "vcpu": m.vcpu,
            "memory_mib": plan.memory_mib,
            "disk_gib": plan.disk_gib,
            "mac": m.mac,
            "ip": str(m.ip),
            "address": "static (afterburn kargs)" if spec.network.static_ips else "DHCP reservation for the MAC",
            "extra_config": {**cfg, IGNITION_KEY: "<base64 of the ignition below>", ENCODING_KEY: "base64"},
            "ignition": ignition_summary(spec, m.role, ignition_dir, vs.ignition_url),
        })
    return {
        "platform": "vsphere",
        "cluster": spec.name,
        "vcenter": f"{vs.host}:{vs.port}",
        "tls": "insecure (verification off)" if vs.insecure else
               (f"verified against {vs.ca_bundle}" if vs.ca_bundle else "verified against the system CA store"),
        "datacenter": p.datacenter,
        "cluster_path": p.cluster,
        "folder": p.folder,
        "steps": ["resolve inventory paths", "check VM names are free", f"create folder {p.folder}",
                  "clone template, marked okdbench.cluster/okdbench.node (parallel)",
                  "reconfigure vCPU/memory/disk/NIC/extraConfig", "power on",
                  "wait bootstrap complete", "approve CSRs", "remove bootstrap", "wait install complete"],
        "vms": vms,
    }
