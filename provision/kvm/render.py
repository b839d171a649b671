"""Pure rendering for KVM: libvirt network/domain/volume XML, haproxy config, per-node ignition.

Nothing here talks to libvirt. The same spec and output directory give byte-identical files.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from provision.okd import nic
from provision.spec import ClusterSpec, Machine, SpecError, derive_mac
from provision.templating import render

XMLNS = "https://okdbench.dev/xmlns/1"


@dataclass(frozen=True)
class NetPlan:
    name: str
    bridge: str
    mac: str
    mode: str
    gateway: ipaddress.IPv4Address
    prefix: int
    api_ip: ipaddress.IPv4Address
    ingress_ip: ipaddress.IPv4Address


def kvm_section(spec: ClusterSpec):
    if spec.kvm is None:
        raise SpecError("kvm: missing section for platform kvm; add a 'kvm:' block")
    return spec.kvm


def net_plan(spec: ClusterSpec) -> NetPlan:
    kvm = kvm_section(spec)
    n = spec.network
    gateway = n.gateway or next(n.machine_cidr.hosts())
    # The load balancer (haproxy) runs on the KVM host, which is the bridge address by default.
    lb = n.lb_address or gateway
    # Linux interface names have at most 15 characters; cluster names up to 42.
    bridge = kvm.network.bridge or "okd" + hashlib.sha256(spec.name.encode()).hexdigest()[:8]
    return NetPlan(
        name=kvm.network.name or f"okd-{spec.name}",
        bridge=bridge,
        mac=derive_mac(spec.name, "bridge", "kvm", "52:54:00"),
        mode=kvm.network.mode,
        gateway=gateway,
        prefix=n.machine_cidr.prefixlen,
        api_ip=n.api_vip or lb,
        ingress_ip=n.ingress_vip or lb,
    )


def domain_name(spec: ClusterSpec, m: Machine) -> str:
    return f"{spec.name}-{m.name}"


def volume_name(spec: ClusterSpec, m: Machine) -> str:
    return f"{spec.name}-{m.name}.qcow2"


def serial_log_path(workdir: Path, spec: ClusterSpec, m: Machine) -> Path:
    return Path(workdir).resolve() / "serial" / f"{domain_name(spec, m)}.serial.log"


def ignition_path(workdir: Path, spec: ClusterSpec, m: Machine) -> Path:
    return Path(workdir).resolve() / "ignition" / f"{domain_name(spec, m)}.ign"


def nic_queues(spec: ClusterSpec, m: Machine) -> int:
    q = kvm_section(spec).tuning.nic_queues
    return q if q else min(m.vcpu, 8)


def cpu_mode(spec: ClusterSpec, dom_type: str) -> str:
    mode = kvm_section(spec).tuning.cpu_mode
    # TCG cannot pass the host CPU through; 'maximum' (-cpu max) is its equivalent and, unlike the
    # qemu64 default, has x86-64-v2, which OKD 4.13+ requires.
    if dom_type != "kvm" and mode in ("host-passthrough", "host-model"):
        return "maximum"
    return mode


def render_network(spec: ClusterSpec) -> str:
    return render("kvm-network.xml.j2", spec=spec, net=net_plan(spec), machines=spec.machines(), xmlns=XMLNS)


def render_domain(spec: ClusterSpec, m: Machine, workdir: Path, dom_type: str, kernel_cmdline: str | None = None) -> str:
    kvm = kvm_section(spec)
    t = kvm.tuning
    testguest = spec.okd.guest == "testguest"
    if testguest and not (kvm.kernel and kvm.initrd):
        raise SpecError("kvm.kernel: a testguest spec boots kernel+initrd directly; set kvm.kernel and kvm.initrd")
    dom = {
        "type": dom_type,
        "name": domain_name(spec, m),
        "ignition": ignition_path(workdir, spec, m),
        "kernel": str(Path(kvm.kernel).resolve()) if testguest else None,
        "initrd": str(Path(kvm.initrd).resolve()) if testguest else None,
        "cmdline": kernel_cmdline or "",
        "cpu_mode": cpu_mode(spec, dom_type),
        "pool": kvm.storage_pool,
        "volume": volume_name(spec, m),
        "disk_format": "qcow2",
        "disk_dev": "vda" if t.disk_bus == "virtio" else "sda",
        "network": net_plan(spec).name,
        "nic_queues": nic_queues(spec, m) if t.nic_model == "virtio" else 1,
        "serial_file": testguest,
        "serial_log": serial_log_path(workdir, spec, m),
    }
    return render("kvm-domain.xml.j2", spec=spec, m=m, t=t, dom=dom, xmlns=XMLNS)


def render_volume(spec: ClusterSpec, m: Machine, backing: str | None, backing_format: str = "qcow2") -> str:
    # qcow2 is sparse: the spec's disk size costs only what the guest writes.
    vol = {"name": volume_name(spec, m), "capacity": m.disk, "format": "qcow2",
           "backing": backing, "backing_format": backing_format}
    return render("kvm-volume.xml.j2", vol=vol)


def render_haproxy(spec: ClusterSpec, *, with_bootstrap: bool = True) -> str:
    machines = spec.machines()
    masters = [m for m in machines if m.role == "master"]
    workers = [m for m in machines if m.role == "worker"]
    boot = [m for m in machines if m.role == "bootstrap"] if with_bootstrap else []
    return render("haproxy.cfg.j2", spec=spec, bind=net_plan(spec).api_ip, control=boot + masters,
                  ingress=workers or masters, workers=bool(workers), with_bootstrap=bool(boot))


def role_ignition(spec: ClusterSpec, role: str, installer_ignition: dict[str, Path] | None) -> bytes:
    if spec.okd.guest == "testguest" or not installer_ignition:
        return nic.empty_ignition()
    return installer_ignition[role].read_bytes()


def node_ignition(spec: ClusterSpec, m: Machine, role_config: bytes) -> bytes:
    return nic.merge_files(role_config, nic.network_files(spec, m, static=spec.network.static_ips))


def render_all(spec: ClusterSpec, out_dir: Path, dom_type: str, installer_ignition: dict[str, Path] | None = None,
               kernel_cmdline=None) -> list[Path]:
    """Write every file provisioning uses into out_dir; return their paths (sorted).

    Node ignition files are complete when the role configs exist (test guests always; OKD after
    `openshift-install create ignition-configs`); otherwise each node gets its network snippet
    (<domain>.network.ign, a valid ignition config) to show what will be merged.
    `kernel_cmdline(spec, machine) -> str` gives test guests their command line.
    """
    out_dir = Path(out_dir).resolve()
    files: dict[Path, tuple[bytes, int]] = {}
    files[out_dir / "network.xml"] = (render_network(spec).encode(), 0o644)
    files[out_dir / "haproxy.cfg"] = (render_haproxy(spec).encode(), 0o644)
    have_roles = spec.okd.guest == "testguest" or bool(installer_ignition)
    for m in spec.machines():
        cmdline = kernel_cmdline(spec, m) if kernel_cmdline else None
        files[out_dir / "domains" / f"{domain_name(spec, m)}.xml"] = (
            render_domain(spec, m, out_dir, dom_type, cmdline).encode(), 0o644)
        if have_roles:
            # qemu (libvirt-qemu user) reads these through fw_cfg; bootstrap ignition holds cluster
            # secrets, so the directory is not listable by others (see kvm_provision for ownership).
            files[ignition_path(out_dir, spec, m)] = (node_ignition(spec, m, role_ignition(spec, m.role, installer_ignition)), 0o640)
        else:
            snippet = ignition_path(out_dir, spec, m).with_suffix(".network.ign")
            files[snippet] = (node_ignition(spec, m, nic.empty_ignition()), 0o644)
    return _write(files)


def _write(files: dict[Path, tuple[bytes, int]]) -> list[Path]:
    for path, (data, mode) in sorted(files.items()):
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != data:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.chmod(mode)
            tmp.replace(path)
        else:
            path.chmod(mode)
    return sorted(files)
