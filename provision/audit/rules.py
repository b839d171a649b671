"""The rule table: one row per setting the audit checks, shared by the code, the CLI and the docs.

A rule function (in kvm.py / vsphere.py / compare.py, and the security ones in kvm_security.py /
vsphere_security.py, whose rows live in security_rules.py) returns Findings that name a rule id
here; severity, why and fix come from this table so they are written once.
"""

from __future__ import annotations

from dataclasses import dataclass

from provision.audit.rule import KINDS, SEVERITIES, Kind, Rule, Severity, severity_rank
from provision.audit.security_rules import SECURITY_RULES

__all__ = ["KINDS", "SEVERITIES", "Kind", "Rule", "Severity", "severity_rank", "Finding", "RULES"]


@dataclass(frozen=True)
class Finding:
    """One rule that fired on one VM (or on the comparison as a whole: vm='*')."""

    rule: str
    vm: str
    observed: str
    role: str = ""
    node: str = ""  # Kubernetes node name when known
    subject: str = ""  # the device or setting inside the VM, e.g. disk 'vda'

    @property
    def severity(self) -> Severity:
        return RULES[self.rule].severity

    @property
    def kind(self) -> Kind:
        return RULES[self.rule].kind

    @property
    def where(self) -> str:
        return f"{self.vm}:{self.subject}" if self.subject else self.vm

    def line(self) -> str:
        return f"{self.severity} {self.rule} {self.where}: {self.observed}"

    def to_json(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "kind": self.kind,
            "vm": self.vm,
            "node": self.node,
            "role": self.role,
            "subject": self.subject,
            "observed": self.observed,
            "fix": RULES[self.rule].fix,
        }


_RULES = [
    # ---------------------------------------------------------------- KVM (domain XML + host)
    Rule(
        "kvm.cpu-model", "kvm", "critical", "Guest CPU model lacks x86-64-v2",
        bad="no <cpu> element (qemu64/kvm64) or a custom model without SSE4.2/POPCNT/SSSE3/CX16",
        good="<cpu mode='host-passthrough'/> (or host-model, or a custom model with x86-64-v2)",
        why="Fedora/CentOS Stream CoreOS for OKD 4.13+ is built for x86-64-v2; on qemu64 the nodes do not boot, "
            "and a generic model hides AES-NI/AVX from builds and TLS",
        fix="set kvm.tuning.cpu_mode: host-passthrough in the spec (virsh edit: <cpu mode='host-passthrough' check='none'/>)",
    ),
    Rule(
        "kvm.disk-bus", "kvm", "high", "Disk on an emulated bus",
        bad="<target bus='ide'> or bus='sata'",
        good="bus='virtio' (or 'scsi' on a virtio-scsi controller)",
        why="IDE/SATA are fully emulated: one request at a time through QEMU's device model; etcd fsync "
            "latency and image pulls suffer several-fold",
        fix="set kvm.tuning.disk_bus: virtio (virsh edit: <target dev='vda' bus='virtio'/>)",
    ),
    Rule(
        "kvm.disk-cache", "kvm", "high", "Host page cache in the disk path",
        bad="cache unset (writeback), writethrough, directsync, or unsafe (flushes ignored: data loss on host crash)",
        good="<driver cache='none'/>",
        why="with the host page cache the guest's fsync is double-buffered and latency jitters with host memory "
            "pressure; 'unsafe' acknowledges fsync without writing, so etcd can lose committed data",
        fix="set kvm.tuning.disk_cache: none (virsh edit: <driver name='qemu' type='qcow2' cache='none' io='native'/>)",
    ),
    Rule(
        "kvm.disk-io", "kvm", "medium", "Disk I/O through QEMU's thread pool",
        bad="io unset or io='threads'",
        good="io='native' (with cache='none') or io='io_uring'",
        why="the thread pool adds a context switch and queueing per request; native AIO/io_uring submit directly, "
            "lowering fsync latency",
        fix="set kvm.tuning.disk_io: native (virsh edit: <driver ... cache='none' io='native'/>)",
    ),
    Rule(
        "kvm.disk-iothread", "kvm", "low", "System disk served by the main QEMU loop",
        bad="no <iothreads> or the system disk's driver has no iothread='N'",
        good="<iothreads>1</iothreads> and <driver ... iothread='1'/> on the system disk",
        why="without an iothread, disk completions compete with device emulation and vCPU exits in QEMU's main loop",
        fix="set kvm.tuning.iothreads: 1 (virsh edit: <iothreads>1</iothreads>, <driver ... iothread='1'/>)",
    ),
    Rule(
        "kvm.nic-model", "kvm", "medium", "Emulated NIC",
        bad="<model type='e1000'/>, e1000e, rtl8139 (or no model: rtl8139)",
        good="<model type='virtio'/>",
        why="emulated NICs cost a VM exit per packet batch; virtio-net is paravirtual and vhost-accelerated, "
            "so SDN (OVN) throughput and pod-to-pod latency suffer on emulated ones",
        fix="set kvm.tuning.nic_model: virtio (virsh edit: <model type='virtio'/>)",
    ),
    Rule(
        "kvm.nic-multiqueue", "kvm", "medium", "Single-queue virtio NIC on a multi-vCPU guest",
        bad="virtio NIC without <driver queues='N'/> (N >= 2) on a guest with 2+ vCPUs",
        good="<driver name='vhost' queues='min(vCPUs, 8)'/>",
        why="one queue means one vCPU handles all receive interrupts: it becomes the bottleneck for OVN and ingress",
        fix="set kvm.tuning.nic_queues: 0 (one per vCPU, at most 8) (virsh edit: <driver name='vhost' queues='4'/>)",
    ),
    Rule(
        "kvm.memballoon", "kvm", "low", "Memory balloon present",
        bad="<memballoon model='virtio'/> (libvirt adds it when absent)",
        good="<memballoon model='none'/>",
        why="a balloon lets the host reclaim guest memory under pressure: kubelet's view of allocatable memory "
            "becomes false and pods are OOM-killed or evicted unpredictably",
        fix="set kvm.tuning.memballoon: false (virsh edit: <memballoon model='none'/>)",
    ),
    Rule(
        "kvm.vcpu-overcommit", "kvm", "high", "Host vCPU overcommit too high",
        bad="sum of vCPUs of the host's domains / host CPUs above 1.5 (control plane) or 4 (other nodes)",
        good="at most 1.5:1 where masters run, 4:1 elsewhere",
        why="etcd and the API server miss heartbeats and leader-election deadlines when their vCPUs wait for "
            "a physical CPU; steal time also inflates every build time measured",
        fix="move VMs to other hosts, lower their vCPU counts, or add physical CPUs; pin masters if they share a host",
    ),
    Rule(
        "kvm.etcd-network-storage", "kvm", "medium", "Master disk on network storage (informational)",
        bad="master disk on a netfs/iscsi/rbd/gluster pool, a network disk, or a dir pool mounted from NFS/CIFS/Ceph "
            "(mounts are read when libvirtd is local)",
        good="master disks on local SSD/NVMe (dir, logical or disk pool)",
        why="etcd needs p99 fdatasync below ~10 ms; network storage adds a round trip per fsync and jitter "
            "from other tenants",
        fix="put master volumes in a local pool (kvm.storage_pool) on SSD/NVMe; check with the etcd fio/fdatasync probe",
    ),
    # ---------------------------------------------------------------- vSphere (pyvmomi)
    Rule(
        "vsphere.hw-version", "vsphere", "critical", "VM hardware version below 15",
        bad="config.version below vmx-15",
        good="vmx-15 or newer (vmx-19 on vSphere 7.0U2+)",
        why="OpenShift/OKD on vSphere requires hardware version 15+; older versions lack the paravirtual "
            "devices and CPU features the CSI driver and the installer's checks expect",
        fix="power off the VM and upgrade compatibility (vSphere Client: Compatibility > Upgrade; pyvmomi UpgradeVM_Task(version='vmx-19'))",
    ),
    Rule(
        "vsphere.disk-uuid", "vsphere", "critical", "disk.EnableUUID not TRUE",
        bad="extraConfig disk.EnableUUID missing or FALSE",
        good="disk.EnableUUID = TRUE",
        why="without it the guest sees no stable disk serials: the vSphere CSI driver cannot attach persistent "
            "volumes and udev by-id links are missing",
        fix="set the advanced parameter disk.EnableUUID=TRUE on the template and VMs (powered off)",
    ),
    Rule(
        "vsphere.cpu-hot-add", "vsphere", "medium", "CPU hot-add enabled",
        bad="config.cpuHotAddEnabled = true",
        good="cpuHotAddEnabled = false",
        why="CPU hot-add disables vNUMA: the guest sees one NUMA node and memory access from large VMs "
            "crosses sockets",
        fix="power off the VM and clear CPU Hot Plug (vSphere Client: CPU > Enable CPU Hot Add)",
    ),
    Rule(
        "vsphere.snapshots", "vsphere", "high", "Snapshot present on a node VM",
        bad="one or more snapshots",
        good="no snapshots on running node VMs",
        why="every write goes through a delta disk chain: disk latency grows with the chain and consolidation "
            "stalls the VM; etcd suffers first",
        fix="delete the snapshots (Snapshots > Delete All) and take backups with etcd backup instead",
    ),
    Rule(
        "vsphere.nic-vmxnet3", "vsphere", "medium", "NIC not VMXNET3",
        bad="e1000, e1000e, pcnet32, vmxnet2",
        good="VirtualVmxnet3",
        why="emulated NICs cost CPU per packet and lack multiqueue/RSS; OVN throughput suffers",
        fix="replace the NIC with a VMXNET3 adapter on the template (same port group)",
    ),
    Rule(
        "vsphere.scsi-paravirtual", "vsphere", "medium", "SCSI controller not paravirtual",
        bad="LSI Logic (parallel/SAS) or BusLogic controller",
        good="VMware Paravirtual (ParaVirtualSCSIController)",
        why="PVSCSI has deeper queues and lower CPU cost per I/O; LSI emulation limits etcd and image I/O",
        fix="change the controller type to VMware Paravirtual on the template (the guest has the pvscsi driver)",
    ),
    Rule(
        "vsphere.thin-disk-master", "vsphere", "low", "Thin-provisioned master disk (informational)",
        bad="master disk backing thinProvisioned = true",
        good="thick eager-zeroed disks for masters",
        why="first writes to a thin disk allocate and zero blocks: etcd fsync latency spikes until the disk is "
            "fully written",
        fix="clone masters with a thick eager-zeroed disk (RelocateSpec disk transform 'flat' + eagerlyScrub)",
    ),
    Rule(
        "vsphere.tools-not-running", "vsphere", "low", "VMware Tools not running",
        bad="guest.toolsRunningStatus not guestToolsRunning on a powered-on VM",
        good="guestToolsRunning (open-vm-tools in FCOS)",
        why="without tools vCenter cannot report guest IPs, quiesce, or shut the guest down cleanly; "
            "time sync and heartbeats are missing",
        fix="check the open-vm-tools service in the node (systemctl status vmtoolsd)",
    ),
    Rule(
        "vsphere.latency-reservations", "vsphere", "medium", "High latency sensitivity without reservations",
        bad="latencySensitivity.level = high with no full memory reservation or no CPU reservation",
        good="with level high: memoryReservationLockedToMax (or reservation = memory) and a CPU reservation",
        why="latency sensitivity 'high' only gives exclusive physical CPUs when CPU and memory are fully reserved; "
            "otherwise it adds no benefit and the VM may fail to power on after changes",
        fix="reserve all guest memory and vCPUs x core MHz, or set latency sensitivity back to normal",
    ),
    # ---------------------------------------------------------------- both
    Rule(
        "nodes.size-mismatch", "both", "high", "Node sizes differ between the platforms compared",
        bad="a role with different vCPU, memory, count or disk type on the two platforms",
        good="identical vCPU, memory, count and disk type per role",
        why="a verdict of 'slower' between clusters of different sizes measures the sizing, not the hypervisor",
        fix="make the node groups in the two specs identical (okdbench audit --spec A --spec B shows the difference)",
    ),
    Rule(
        "nodes.size-drift", "both", "high", "VM size differs from the spec",
        bad="a node VM's vCPU or memory on the hypervisor differs from the spec's node group",
        good="every VM sized as its spec node group",
        why="results are labelled with the spec's sizes; a resized VM makes the comparison silently unfair",
        fix="resize the VM back to the spec (or change the spec and re-provision)",
    ),
]

RULES: dict[str, Rule] = {r.id: r for r in [*_RULES, *SECURITY_RULES]}


def of_kind(findings: list[Finding], kind: str | None) -> list[Finding]:
    """The findings of one rule set ('performance' or 'security'); all of them for None."""
    return [f for f in findings if kind is None or f.kind == kind]


def sort_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (severity_rank(f.severity), f.rule, f.vm, f.subject))


def count_by_severity(findings: list[Finding]) -> dict[str, int]:
    out = {s: 0 for s in SEVERITIES}
    for f in findings:
        out[f.severity] += 1
    return out
