"""What a node VM looks like on the hypervisor, platform-neutral: the unit the comparison works on."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from provision.spec import Machine


@dataclass(frozen=True)
class VmInfo:
    name: str  # the VM's name on the hypervisor
    machine: str  # the spec machine it was matched to (master-0), or '' when unmatched
    role: str
    vcpu: int
    memory_mib: int
    disk_gib: int | None  # system disk capacity, None when the hypervisor does not say
    disk: str  # system disk kind, e.g. 'virtio qcow2 cache=none io=native' or 'pvscsi thin'
    provisioning: str  # thin | thick | unknown: what makes disk types (in)comparable
    node: str = ""
    uuid: str = ""  # BIOS/domain UUID: what a node's providerID names (vsphere://<uuid>)
    ips: tuple[str, ...] = ()  # the spec machine's address, when matched

    def to_json(self) -> dict:
        return asdict(self)


def match_machine(machines: list[Machine], cluster: str, vm_name: str, macs: list[str]) -> Machine | None:
    """The spec machine a VM is: by MAC first (derived, unique), then by name (<cluster>-<machine> or <machine>)."""
    lowered = {m.lower() for m in macs}
    for m in machines:
        if m.mac.lower() in lowered:
            return m
    for m in machines:
        if vm_name in (m.name, f"{cluster}-{m.name}", m.hostname):
            return m
    return None


def role_from_name(name: str) -> str:
    """Fallback when a VM matches no spec machine: the conventional OKD node names."""
    low = name.lower()
    if "bootstrap" in low:
        return "bootstrap"
    if "master" in low or "control-plane" in low or "control" in low:
        return "master"
    return "worker"


def map_nodes(infos: list[VmInfo], nodes: list[dict]) -> dict[str, str]:
    """VM name -> Kubernetes node name.

    nodes: {"name", "provider_id", "addresses"} per node. Matched by providerID (vsphere://<uuid>,
    libvirt's domain UUID), then by address (the spec machine's IP), then by name (master-0 vs
    master-0.<cluster domain>).
    """
    out: dict[str, str] = {}
    for n in nodes:
        pid = (n.get("provider_id") or "").rsplit("/", 1)[-1].lower()
        addresses = set(n.get("addresses") or [])
        short = n["name"].split(".", 1)[0]
        for i in infos:
            if i.name in out:
                continue
            if (pid and i.uuid and pid == i.uuid.lower()) or addresses & set(i.ips) \
                    or short in (i.machine, i.name):
                out[i.name] = n["name"]
                break
    return out
