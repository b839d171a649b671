"""The cluster spec: one YAML file describes one cluster on one platform.

Validation errors are one line each: YAML path, bad value, what is allowed.
Secrets are never inline: the spec names files or environment variables that hold them.
"""

from __future__ import annotations

import hashlib
import itertools
import ipaddress
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from plumbing.errors import UserError
from plumbing.validation import bounded_lines, error_lines, read_yaml, short

Role = Literal["bootstrap", "master", "worker"]

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(KiB|MiB|GiB|TiB|KB|MB|GB|TB|K|M|G|T)\s*$", re.IGNORECASE)
_UNITS = {
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
}


class SpecError(UserError):
    """A cluster spec is invalid. str() is one line: path, value, what is allowed."""


# Bounds on node sizes: beyond what libvirt or vCenter would ever give one VM (vSphere 8: 24 TiB
# of memory, 62 TiB per disk) is a typo, and refused with the bound named.
SIZE_BOUNDS = {"memory": (2**20, 24 * 2**40, "1MiB", "24TiB"), "disk": (2**20, 64 * 2**40, "1MiB", "64TiB")}


def parse_size(value: Any) -> int:
    """'16GiB' -> bytes. Bare numbers are refused: '16' is ambiguous (GB? GiB? MiB?)."""
    if isinstance(value, str) and len(value) <= 40:
        m = _SIZE_RE.match(value)
        if m:
            # Decimal, not float: '1e400GiB'-sized inputs must not overflow before the bound check.
            return int(Decimal(m.group(1)) * _UNITS[m.group(2).lower()])
    raise ValueError(f"{short(value, 40)!r} is not a size; use e.g. 16GiB")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Size(int):
    """Bytes; parsed from '16GiB'."""


def _size(v: Any, info: ValidationInfo) -> int:
    size = parse_size(v)
    low, high, low_text, high_text = SIZE_BOUNDS[info.field_name]
    if not low <= size <= high:
        raise ValueError(f"{short(v, 40)!r} is out of range; use between {low_text} and {high_text}")
    return size


def _address_text(v: Any) -> Any:
    """Addresses must be written as text: pydantic would read `machine_cidr: 5` (or `true`) as 0.0.0.5/32."""
    for item in v if isinstance(v, list) else [v]:
        if isinstance(item, (bool, int, float)):
            raise ValueError(f"{item!r} is not an address; write it as text, e.g. 198.18.0.0/24 or 198.18.0.10")
    return v


class NodeGroup(_Model):
    role: Role
    count: int = Field(ge=0, le=100)
    vcpu: int = Field(ge=1, le=768)
    memory: int
    disk: int
    mac_prefix: str | None = None
    ips: list[ipaddress.IPv4Address] | None = None

    _v_memory = field_validator("memory", "disk", mode="before")(_size)
    _v_ips = field_validator("ips", mode="before")(_address_text)

    @field_validator("mac_prefix")
    @classmethod
    def _v_mac_prefix(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){2,4}", v):
            raise ValueError(f"{v!r} is not a MAC prefix; use e.g. 52:54:00")
        return v.lower()

    @property
    def memory_mib(self) -> int:
        return self.memory // 2**20

    @property
    def disk_gib(self) -> int:
        return -(-self.disk // 2**30)


class OKD(_Model):
    version: str = "unknown"
    installer: str = "openshift-install"
    # For the demo and tests: boot a tiny guest, not Fedora CoreOS; no OKD is installed.
    guest: Literal["fcos", "testguest"] = "fcos"
    # Image registry storage after install: None -> emptyDir (POC only), else a PVC of this class.
    registry_storage_class: str | None = None


class Network(_Model):
    machine_cidr: ipaddress.IPv4Network
    api_vip: ipaddress.IPv4Address | None = None
    ingress_vip: ipaddress.IPv4Address | None = None
    lb_address: ipaddress.IPv4Address | None = None
    gateway: ipaddress.IPv4Address | None = None
    dns_servers: list[ipaddress.IPv4Address] = Field(default_factory=list)
    cluster_network: ipaddress.IPv4Network = ipaddress.IPv4Network("10.128.0.0/14")
    host_prefix: int = Field(23, ge=8, le=30)
    service_network: ipaddress.IPv4Network = ipaddress.IPv4Network("172.30.0.0/16")
    static_ips: bool = False  # vSphere: afterburn network kargs instead of DHCP

    _v_addresses = field_validator("machine_cidr", "api_vip", "ingress_vip", "lb_address", "gateway", "dns_servers",
                                   "cluster_network", "service_network", mode="before")(_address_text)

    @model_validator(mode="after")
    def _inside(self) -> "Network":
        for name in ("api_vip", "ingress_vip", "lb_address", "gateway"):
            ip = getattr(self, name)
            if ip is not None and ip not in self.machine_cidr:
                raise ValueError(f"network.{name}: {ip} is outside machine_cidr {self.machine_cidr}; pick an address inside it")
        return self


class KvmTuning(_Model):
    cpu_mode: Literal["host-passthrough", "host-model", "custom", "default"] = "host-passthrough"
    cpu_model: str | None = None
    disk_bus: Literal["virtio", "scsi", "sata", "ide"] = "virtio"
    disk_cache: Literal["none", "writethrough", "writeback", "directsync", "unsafe", "default"] = "none"
    disk_io: Literal["native", "io_uring", "threads", "default"] = "native"
    iothreads: int = Field(1, ge=0, le=16)
    nic_model: Literal["virtio", "e1000", "e1000e", "rtl8139"] = "virtio"
    nic_queues: int = Field(0, ge=0, le=64)  # 0: one queue per vCPU (max 8)
    memballoon: bool = False


class KvmNetwork(_Model):
    mode: Literal["nat", "route", "open", "bridge"] = "nat"
    name: str | None = None  # default: okd-<cluster>
    bridge: str | None = None  # existing host bridge (mode=bridge) or libvirt's bridge name


class KvmHostConfig(_Model):
    """Where the security audit reads the libvirt host's daemon settings (only when libvirtd is local)."""

    qemu_conf: Path = Path("/etc/libvirt/qemu.conf")
    libvirtd_conf: Path = Path("/etc/libvirt/libvirtd.conf")
    virtproxyd_conf: Path = Path("/etc/libvirt/virtproxyd.conf")
    systemd_dir: Path = Path("/etc/systemd/system")  # enabled units: <dir>/sockets.target.wants/*-tcp.socket


class KvmPlatform(_Model):
    uri: str = "qemu:///system"
    storage_pool: str = "default"
    base_image: str | None = None  # FCOS qcow2 volume name in the pool, or a path
    kernel: str | None = None  # testguest: direct kernel boot
    initrd: str | None = None
    kernel_args: str | None = None  # testguest: extra kernel arguments, e.g. "okdbench.probes=cpu,fsync okdbench.repeat=3"
    domain_type: Literal["auto", "kvm", "qemu"] = "auto"
    network: KvmNetwork = KvmNetwork()
    tuning: KvmTuning = KvmTuning()
    ignition_max_age_hours: float = Field(24, gt=0, le=8760)  # at most a year
    host_config: KvmHostConfig = KvmHostConfig()


class VsphereCredentials(_Model):
    username_env: str | None = "VSPHERE_USERNAME"
    password_env: str | None = "VSPHERE_PASSWORD"
    file: Path | None = None  # YAML/INI with username/password; mode 0600 recommended

    @model_validator(mode="before")
    @classmethod
    def _no_inline(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("password" in data or "username" in data):
            raise ValueError("credentials must not be inline; use password_env (an environment variable) or file (a path)")
        return data


class VspherePlatform(_Model):
    host: str
    port: int = Field(443, ge=1, le=65535)
    datacenter: str
    cluster: str
    datastore: str
    network: str
    folder: str | None = None  # default: /<datacenter>/vm/<cluster name>
    resource_pool: str | None = None
    template: str
    ca_bundle: Path | None = None
    insecure: bool = False
    credentials: VsphereCredentials = VsphereCredentials()
    ignition_url: str | None = None  # where the bootstrap pointer ignition fetches from
    # Guest NIC name for static-IP kargs: vmxnet3 in slot 192 is ens192 on FCOS.
    interface: str = Field("ens192", pattern=r"^[a-zA-Z0-9_.:-]{1,15}$")


class ResilienceThresholds(_Model):
    """Limits of the `resilience` criterion. Defaults come from OKD's own timers (see README)."""

    # A dead node's pods stay in the Service's endpoints until the node controller marks the node
    # NotReady (node-monitor-grace-period, 40 s) and their Ready condition false; + 5 s for the
    # router to reload. Longer client-visible failure than that is the platform's doing.
    unavailable_s: float = Field(45.0, gt=0)
    # Pods of a NotReady node are evicted after the default tolerationSeconds (300 s for
    # not-ready/unreachable) on top of the 40 s grace period, + 20 s to schedule and start elsewhere.
    recover_s: float = Field(360.0, gt=0)
    # Live migration / vMotion is sold as invisible to applications: not one failed request.
    migration_errors: int = Field(0, ge=0)
    # QEMU's default max downtime is 300 ms and vMotion's switch-over ~1 s; 2 s of silence is a failure.
    migration_downtime_ms: float = Field(2000.0, gt=0)
    # No etcd member runs on a worker: a worker disruption that makes etcd change leader means the
    # control plane felt it (shared host, storage or network): a finding, hence 0.
    worker_leader_changes: int = Field(0, ge=0)
    # vSphere HA declares a host failed after 15 s without heartbeats that also fails a ping (VMware,
    # "Failure Detection and Host Network Isolation"), then powers the VM on elsewhere, which takes
    # seconds with free capacity. 120 s leaves 105 s for placement and power-on: later than that,
    # something held HA back (capacity, admission control, restart order, a failed first attempt).
    ha_restart_s: float = Field(120.0, gt=0)


class HaRestart(_Model):
    """Opt-in for the ha-restart disruption: okdbench fails this ESXi host (vSphere only, see README)."""

    # The host as vCenter names it; there is no "any host": the user picks one with nothing critical on it.
    host: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?$")
    # reboot: the host comes back by itself; shutdown: someone powers it on by hand afterwards.
    how: Literal["reboot", "shutdown"] = "reboot"

    @field_validator("host")
    @classmethod
    def _named(cls, v: str) -> str:
        if v.lower() in ("any", "auto", "all", "random"):
            raise ValueError(f"{v!r} is not a host; name one ESXi host of the cluster as vCenter shows it")
        return v


class Resilience(_Model):
    """What the resilience suite does to node VMs (suites/test_resilience.py)."""

    disruptions: list[Literal["freeze", "reset", "reboot", "power-off", "migrate", "ha-restart"]] = ["freeze", "reset", "power-off"]
    freeze_s: float = Field(10.0, gt=0, le=3600)
    replicas: int = Field(3, ge=2, le=50)
    probe_interval_s: float = Field(0.2, ge=0.01, le=10)
    probe_timeout_s: float = Field(2.0, gt=0, le=60)
    settle_s: float = Field(10.0, ge=0, le=3600)  # quiet observation after everything is back
    # KVM: the destination's libvirt URI as the source libvirtd reaches it (qemu+ssh://kvm2/system);
    # vSphere: an ESXi host name of the cluster. Unset: the migrate disruption is skipped.
    migrate_to: str | None = None
    migrate_stats_uri: str | None = None  # KVM: how okdbench reaches the destination (default migrate_to)
    vms: dict[str, str] = Field(default_factory=dict)  # node name -> VM name, when not <cluster>-<machine>
    thresholds: ResilienceThresholds = ResilienceThresholds()
    ha_restart: HaRestart | None = None  # vSphere: the opt-in that lets ha-restart fail an ESXi host


class ClusterSpec(_Model):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$")
    base_domain: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    platform: Literal["kvm", "vsphere"]
    okd: OKD = OKD()
    network: Network
    nodes: list[NodeGroup] = Field(min_length=1)
    ssh_public_key: Path | None = None
    pull_secret: Path | None = None
    kvm: KvmPlatform | None = None
    vsphere: VspherePlatform | None = None
    resilience: Resilience = Resilience()
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> "ClusterSpec":
        section = getattr(self, self.platform)
        if section is None:
            raise ValueError(f"{self.platform}: missing section for platform {self.platform}; add a '{self.platform}:' block")
        roles = [g.role for g in self.nodes]
        for role in set(roles):
            if roles.count(role) > 1:
                raise ValueError(f"nodes: role {role!r} appears twice; list each role once with a count")
        if self.okd.guest == "fcos" and not any(g.role == "master" and g.count > 0 for g in self.nodes):
            raise ValueError("nodes: no master; an OKD cluster needs 1 or 3 masters")
        self.machines()  # addresses and MACs must be derivable: fail at load, not mid-provisioning
        return self

    # ------------------------------------------------------------------ derived

    @property
    def cluster_domain(self) -> str:
        return f"{self.name}.{self.base_domain}"

    def group(self, role: str) -> NodeGroup | None:
        return next((g for g in self.nodes if g.role == role), None)

    def count(self, role: str) -> int:
        g = self.group(role)
        return g.count if g else 0

    def machines(self) -> list["Machine"]:
        """Every node VM, in a stable order, with its derived MAC and IP."""
        out: list[Machine] = []
        cidr = self.network.machine_cidr
        # Lazily: listing every host of a /8 would take seconds and gigabytes.
        first_host = next(iter(cidr.hosts()), cidr.network_address)
        taken = {ip for ip in (self.network.api_vip, self.network.ingress_vip, self.network.lb_address, self.network.gateway) if ip}
        # Default gateway / libvirt host side is the first host address.
        taken.add(first_host)
        # Addresses given explicitly to one group must not be handed out to another.
        taken.update(ip for g in self.nodes for ip in (g.ips or [])[: g.count])
        next_free = (ip for ip in itertools.islice(cidr.hosts(), 9, None) if ip not in taken)
        used_macs: set[str] = set()
        for g in sorted(self.nodes, key=lambda g: ("bootstrap", "master", "worker").index(g.role)):
            for i in range(g.count):
                name = "bootstrap" if g.role == "bootstrap" else f"{g.role}-{i}"
                if g.ips and i < len(g.ips):
                    ip = g.ips[i]
                else:
                    ip = next(next_free, None)
                    if ip is None:
                        total = sum(x.count for x in self.nodes)
                        raise SpecError(f"network.machine_cidr: {cidr} has no free address for {name} ({total} nodes; "
                                        "nodes get addresses from the 10th host on); use a larger network, e.g. a /24")
                mac = derive_mac(self.name, name, self.platform, g.mac_prefix, used_macs)
                used_macs.add(mac)
                out.append(Machine(name=name, role=g.role, index=i, vcpu=g.vcpu, memory=g.memory, disk=g.disk, mac=mac, ip=ip,
                                   hostname=f"{name}.{self.cluster_domain}"))
        seen: dict[Any, str] = {}
        for m in out:
            if m.ip in seen:
                raise SpecError(f"nodes: address {m.ip} is given to both {seen[m.ip]} and {m.name}; give each node its own ip")
            seen[m.ip] = m.name
        return out


class Machine(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    role: Role
    index: int
    vcpu: int
    memory: int
    disk: int
    mac: str
    ip: ipaddress.IPv4Address
    hostname: str

    @property
    def memory_mib(self) -> int:
        return self.memory // 2**20


# vSphere accepts static MACs only in 00:50:56:00:00:00-00:50:56:3F:FF:FF.
_DEFAULT_PREFIX = {"kvm": "02", "vsphere": "00:50:56"}


def derive_mac(cluster: str, node: str, platform: str, prefix: str | None = None, taken: set[str] | None = None) -> str:
    """A stable MAC from (cluster, node): same inputs, same MAC, on every run and machine.

    KVM default: locally administered unicast (02:…), 40 hash bits.
    vSphere default: 00:50:56 with the 4th octet masked to 0x00-0x3F (VMware's manual range).
    A collision inside one cluster is resolved deterministically by re-hashing.
    """
    prefix = (prefix or _DEFAULT_PREFIX.get(platform, "02")).lower()
    pbytes = bytes(int(x, 16) for x in prefix.split(":"))
    taken = taken or set()
    for attempt in range(1000):
        seed = f"okdbench/{cluster}/{node}" + (f"/{attempt}" if attempt else "")
        digest = hashlib.sha256(seed.encode()).digest()
        tail = bytearray(digest[: 6 - len(pbytes)])
        if prefix == "00:50:56":
            tail[0] &= 0x3F
        mac = ":".join(f"{b:02x}" for b in pbytes + bytes(tail))
        if mac not in taken:
            return mac
    raise SpecError(f"nodes: cannot derive a unique MAC for {node} with prefix {prefix}; use a longer-tailed mac_prefix")


def load_spec(path: str | Path) -> ClusterSpec:
    path = Path(path)
    data = read_yaml(path, "--spec", "a cluster spec YAML (see examples/)", SpecError)
    spec = parse_spec(data, source=path)
    # From here on the pull secret, SSH private key and vCenter password are masked wherever
    # okdbench writes text (logs, results, reports), whichever path they leak through.
    from plumbing.redact import register_spec_secrets

    register_spec_secrets(spec)
    return spec


def parse_spec(data: Any, source: Path | None = None) -> ClusterSpec:
    where = f"{source}: " if source else ""
    if not isinstance(data, dict):
        raise SpecError(f"{where}the spec must be a YAML mapping with name, base_domain, platform, network, nodes")
    try:
        spec = ClusterSpec.model_validate(data)
    except ValidationError as exc:
        raise _spec_errors(where, error_lines(exc)) from None
    problems = semantic_problems(spec)
    if problems:
        raise _spec_errors(where, problems)
    base = source.parent if source else Path.cwd()
    resolved = {}
    for key in ("ssh_public_key", "pull_secret"):
        p = getattr(spec, key)
        if p is not None and not p.is_absolute():
            resolved[key] = (base / p.expanduser()).resolve()
    if spec.kvm is not None:
        # Test-guest kernel/initrd paths, like the key files, are relative to the spec file.
        boot = {k: str((base / Path(v).expanduser()).resolve()) for k in ("kernel", "initrd")
                if (v := getattr(spec.kvm, k)) and not Path(v).expanduser().is_absolute()}
        if boot:
            resolved["kvm"] = spec.kvm.model_copy(update=boot)
    return spec.model_copy(update={**resolved, "source": source})


# ------------------------------------------------------------------ what would be refused later
# Checks on a spec whose fields are each valid, for what libvirt, vCenter or OKD would refuse
# (or silently break on) only at provision time. All problems are reported at once.


def _spec_errors(where: str, lines: list[str]) -> SpecError:
    if len(lines) == 1:
        return SpecError(where + lines[0])
    return SpecError(f"{where}{len(lines)} problems; fix each:", details=bounded_lines(lines))


def semantic_problems(spec: ClusterSpec) -> list[str]:
    """One line per problem, naming the field: [] when the spec would provision."""
    problems: list[str] = []
    net = spec.network
    cidr = net.machine_cidr
    kvm = spec.kvm if spec.platform == "kvm" else None
    if kvm is not None and kvm.network.mode == "nat" and cidr.is_global:
        problems.append(f"network.machine_cidr: {cidr} is a public network, but kvm.network.mode is nat (the host would "
                        "masquerade it and hide those addresses); use a private range such as 198.18.0.0/24, or mode route/bridge")
    if kvm is not None and kvm.tuning.cpu_mode == "custom" and not kvm.tuning.cpu_model:
        problems.append("kvm.tuning.cpu_model: required when cpu_mode is custom; name a libvirt CPU model "
                        "(e.g. Skylake-Server-v4), or use cpu_mode host-passthrough")
    problems += ha_restart_problems(spec)
    first_host = next(iter(cidr.hosts()), cidr.network_address)
    host = net.gateway or first_host
    reserved = {host: "the host/gateway address" if net.gateway is None else "network.gateway"}
    for name in ("lb_address", "api_vip", "ingress_vip"):
        ip = getattr(net, name)
        if ip is not None:
            reserved.setdefault(ip, f"network.{name}")
    for i, group in enumerate(spec.nodes):
        if group.mac_prefix and int(group.mac_prefix.split(":")[0], 16) & 1:
            problems.append(f"nodes[{i}].mac_prefix: {group.mac_prefix} is a multicast prefix (first octet odd), which "
                            "libvirt and vCenter refuse for a NIC; use a unicast prefix such as 52:54:00 or 02")
        for j, ip in enumerate((group.ips or [])[: group.count]):
            where = f"nodes[{i}].ips[{j}]"
            if ip not in cidr:
                problems.append(f"{where}: {ip} is outside network.machine_cidr {cidr}; pick an address inside it")
            elif ip in (cidr.network_address, cidr.broadcast_address) and cidr.prefixlen < 31:
                problems.append(f"{where}: {ip} is the network or broadcast address of {cidr}; pick a host address")
            elif ip in reserved:
                problems.append(f"{where}: {ip} is {reserved[ip]}; give the node its own address")
    return problems


def ha_restart_problems(spec: ClusterSpec) -> list[str]:
    """ha-restart fails a whole ESXi host: only on vSphere, only with the explicit opt-in, only when listed."""
    res = spec.resilience
    listed = "ha-restart" in res.disruptions
    if spec.platform != "vsphere" and (listed or res.ha_restart is not None):
        field = "resilience.disruptions" if listed else "resilience.ha_restart"
        return [(f"{field}: ha-restart is vSphere only (libvirt has no HA; on KVM use pacemaker or "
                 "another cluster manager, outside okdbench); remove it")]
    if listed and res.ha_restart is None:
        return [("resilience.disruptions: ha-restart fails an ESXi host and needs the explicit opt-in "
                 "resilience.ha_restart: {host: <ESXi host>, how: reboot|shutdown}; add it, or remove ha-restart")]
    if res.ha_restart is not None and not listed:
        return [(f"resilience.ha_restart: host {res.ha_restart.host} is named but ha-restart is not in "
                 "resilience.disruptions; add ha-restart there to run it, or remove resilience.ha_restart")]
    return []
