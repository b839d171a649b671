"""KVM audit rules against libvirt: domains defined (never started) from deliberately bad and good XML.

Each rule id must fire on tests/data/audit/kvm-bad.xml and not on kvm-good.xml, on libvirt's test
driver and on a real libvirtd (qemu:///system), so removing a rule fails a test.
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

from provision.audit import collect_kvm, kvm
from provision.audit.rules import RULES
from provision.spec import parse_spec

DATA = Path(__file__).parent / "data" / "audit"
# Spelled out, not read from the table: deleting a rule must fail a test.
KVM_RULES = ["kvm.cpu-model", "kvm.disk-bus", "kvm.disk-cache", "kvm.disk-io", "kvm.disk-iothread", "kvm.nic-model",
             "kvm.nic-multiqueue", "kvm.memballoon", "kvm.vcpu-overcommit", "kvm.etcd-network-storage"]

libvirt.registerErrorHandler(lambda ctx, err: None, None)  # errors arrive as exceptions; keep stderr clean


def _xml(kind: str, name: str) -> str:
    root = ET.parse(DATA / f"kvm-{kind}.xml").getroot()
    root.find("name").text = name
    return ET.tostring(root, encoding="unicode")


@contextlib.contextmanager
def defined(conn: libvirt.virConnect, kind: str):
    """Define the fixture domain under a unique name; always undefine it."""
    name = f"okdbench-audit-{kind}-{os.getpid()}-{secrets.token_hex(2)}"
    dom = conn.defineXML(_xml(kind, name))
    try:
        yield name
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            dom.undefine()


def audit(conn: libvirt.virConnect, kind: str, role: str) -> list:
    with defined(conn, kind) as name:
        inv = collect_kvm.collect(conn, "audit", [], names=[name], roles={name: role})
        assert [vm.name for vm in inv.vms] == [name]
        return kvm.audit_kvm(inv.vms, inv.host)


def _fired(findings) -> set[str]:
    return {f.rule for f in findings}


@pytest.fixture(scope="module")
def test_driver_results(libvirt_test_uri):
    conn = libvirt.open(libvirt_test_uri)
    try:
        return audit(conn, "bad", "master"), audit(conn, "good", "master")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def libvirtd_results(libvirt_uri):
    conn = libvirt.open(libvirt_uri)
    try:
        bad = audit(conn, "bad", "master")
        with defined(conn, "good") as name:  # each define costs libvirtd a QEMU capabilities lookup: define once
            inv = collect_kvm.collect(conn, "audit", [], names=[name], roles={name: "master"})
        good = kvm.audit_kvm(inv.vms, inv.host)
        # Other tests may run guests on this 2-CPU host: overcommit is judged as a worker (4:1) there.
        as_worker = [dataclasses.replace(vm, role="worker") for vm in inv.vms]
        return bad, good, kvm.audit_kvm(as_worker, inv.host)
    finally:
        conn.close()


@pytest.mark.parametrize("rule", KVM_RULES)
def test_rule_fires_on_bad_and_not_on_good_test_driver(test_driver_results, rule):
    bad, good = test_driver_results
    assert rule in _fired(bad), f"{rule} did not fire on kvm-bad.xml: {[f.line() for f in bad]}"
    assert rule not in _fired(good), f"{rule} fired on kvm-good.xml: {[f.line() for f in good]}"


@pytest.mark.needs_libvirtd
@pytest.mark.parametrize("rule", KVM_RULES)
def test_rule_fires_on_bad_and_not_on_good_libvirtd(libvirtd_results, rule):
    bad, good, good_worker = libvirtd_results
    assert rule in _fired(bad), f"{rule} did not fire on kvm-bad.xml: {[f.line() for f in bad]}"
    check = good_worker if rule == "kvm.vcpu-overcommit" else good
    assert rule not in _fired(check), f"{rule} fired on kvm-good.xml: {[f.line() for f in check]}"


def test_every_kvm_rule_has_a_function():
    assert set(kvm.RULE_FUNCTIONS) == set(KVM_RULES) == {r for r, rule in RULES.items()
                                                         if r.startswith("kvm.") and rule.kind == "performance"}


@pytest.mark.needs_libvirtd
def test_libvirt_fills_in_defaults_the_audit_sees(libvirtd_results):
    bad, _, _ = libvirtd_results
    cpu = next(f for f in bad if f.rule == "kvm.cpu-model")
    # libvirt writes qemu64 for a domain without <cpu>; its cpu_map says what qemu64 lacks.
    assert "sse4.2" in cpu.observed and cpu.severity == "critical"
    unsafe = next(f for f in bad if f.rule == "kvm.disk-cache" and f.subject == "sda")
    assert "unsafe" in unsafe.observed and "loses data" in unsafe.observed
    over = next(f for f in bad if f.rule == "kvm.vcpu-overcommit")
    assert "limit 1.5:1" in over.observed


def test_overcommit_counts_host_cpus_from_libvirt(libvirt_test_uri):
    conn = libvirt.open(libvirt_test_uri)
    try:
        with defined(conn, "good") as name:
            inv = collect_kvm.collect(conn, "audit", [], names=[name], roles={name: "master"})
        online = conn.getCPUMap(0)[2]
        running = sum(d.info()[3] for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))
    finally:
        conn.close()
    assert inv.host.cpus == online
    assert sum(inv.host.domain_vcpus.values()) == running + 1


# ---------------------------------------------------------------------------- pure rule details

def _vm(xml: str, role: str = "master") -> kvm.KvmVm:
    return kvm.KvmVm.from_xml(f"<domain type='qemu'><name>t</name>{xml}</domain>", role)


HOST = kvm.KvmHost(cpus=8, model_features={"Nehalem": frozenset(kvm.X86_64_V2 | {"sse2"}),
                                           "Opteron_G3": frozenset({"cx16", "lahf_lm", "popcnt", "pni"})})


@pytest.mark.parametrize("cpu,fires", [
    ("<cpu mode='host-passthrough'/>", False),
    ("<cpu mode='host-model'/>", False),
    ("<cpu mode='maximum'/>", False),
    ("", True),
    ("<cpu mode='custom'><model>Nehalem</model></cpu>", False),
    ("<cpu mode='custom'><model>Nehalem</model><feature policy='disable' name='popcnt'/></cpu>", True),
    ("<cpu><model>Opteron_G3</model></cpu>", True),
    ("<cpu><model>Opteron_G3</model><feature policy='require' name='ssse3'/><feature policy='require' name='sse4.1'/>"
     "<feature policy='require' name='sse4.2'/></cpu>", False),
    ("<cpu><model>MadeUp</model></cpu>", True),
])
def test_cpu_model(cpu, fires):
    assert bool(kvm.check_cpu_model(_vm(cpu), HOST)) is fires


def test_overcommit_limits_by_role():
    host = kvm.KvmHost(cpus=4, domain_vcpus={"a": 4, "b": 3})  # 7 vCPUs + the audited one = 8 on 4 CPUs
    vm = "<vcpu>1</vcpu>"
    assert kvm.check_vcpu_overcommit(_vm(vm, "master"), host)  # 2.0 > 1.5
    assert kvm.check_vcpu_overcommit(_vm(vm, "bootstrap"), host)
    assert not kvm.check_vcpu_overcommit(_vm(vm, "worker"), host)  # 2.0 <= 4
    tight = kvm.KvmHost(cpus=4, domain_vcpus={"a": 4, "b": 3}, overcommit={"control-plane": 1.5, "other": 1.0})
    assert kvm.check_vcpu_overcommit(_vm(vm, "worker"), tight)


def _disk(source: str, dtype: str = "file", bus: str = "virtio", driver: str = "cache='none' io='native'") -> str:
    return (f"<devices><disk type='{dtype}' device='disk'><driver name='qemu' type='qcow2' {driver}/>"
            f"{source}<target dev='vda' bus='{bus}'/></disk></devices>")


def test_etcd_network_storage_by_pool():
    host = kvm.KvmHost(cpus=8, pool_types={"nfs": "netfs", "local": "dir"},
                       path_pools={"/srv/nfs": "nfs", "/var/lib/libvirt/images": "local"})
    on_nfs = _disk("<source file='/srv/nfs/master-0.qcow2'/>")
    on_local = _disk("<source file='/var/lib/libvirt/images/master-0.qcow2'/>")
    by_volume = _disk("<source pool='nfs' volume='master-0.qcow2'/>", dtype="volume")
    assert "netfs" in kvm.check_etcd_network_storage(_vm(on_nfs), host)[0].observed
    assert kvm.check_etcd_network_storage(_vm(by_volume), host)
    assert not kvm.check_etcd_network_storage(_vm(on_local), host)
    assert not kvm.check_etcd_network_storage(_vm(on_nfs, "worker"), host)


def test_scsi_bus_is_fine_on_virtio_scsi_only():
    disk = _disk("<source file='/x.qcow2'/>", bus="scsi")
    virtio = disk.replace("</devices>", "<controller type='scsi' index='0' model='virtio-scsi'><driver iothread='1'/></controller></devices>")
    lsi = disk.replace("</devices>", "<controller type='scsi' index='0' model='lsilogic'/></devices>")
    assert not kvm.check_disk_bus(_vm(virtio), HOST)
    assert "lsilogic" in kvm.check_disk_bus(_vm(lsi), HOST)[0].observed
    # the iothread of a virtio-scsi disk is the controller's
    assert not kvm.check_disk_iothread(_vm("<iothreads>1</iothreads>" + virtio), HOST)


def test_multiqueue_only_matters_with_several_vcpus():
    nic = "<devices><interface type='network'><mac address='02:00:00:00:00:01'/><model type='virtio'/></interface></devices>"
    assert not kvm.check_nic_multiqueue(_vm("<vcpu>1</vcpu>" + nic), HOST)
    assert kvm.check_nic_multiqueue(_vm("<vcpu>4</vcpu>" + nic), HOST)
    queued = nic.replace("<model type='virtio'/>", "<model type='virtio'/><driver name='vhost' queues='4'/>")
    assert not kvm.check_nic_multiqueue(_vm("<vcpu>4</vcpu>" + queued), HOST)


def test_domains_found_by_spec_mac(libvirt_test_uri):
    spec = parse_spec({
        "name": "audit", "base_domain": "example.test", "platform": "kvm", "okd": {"guest": "testguest"},
        "network": {"machine_cidr": "198.18.0.0/24"},
        "nodes": [{"role": "master", "count": 1, "vcpu": 1, "memory": "256MiB", "disk": "1GiB"}],
        "kvm": {},
    })
    machine = spec.machines()[0]
    conn = libvirt.open(libvirt_test_uri)
    try:
        name = f"unrelated-name-{secrets.token_hex(2)}"
        xml = _xml("good", name).replace("02:00:00:00:0a:01", machine.mac)
        dom = conn.defineXML(xml)
        try:
            inv = collect_kvm.collect(conn, spec.name, spec.machines())
        finally:
            dom.undefine()
    finally:
        conn.close()
    assert [(i.name, i.machine, i.role, i.vcpu, i.memory_mib) for i in inv.info] == [(name, "master-0", "master", 1, 256)]


MOUNTS = """\
/dev/vda1 / ext4 rw,relatime 0 0
nas.example.test:/export/vms /var/lib/libvirt/images nfs4 rw,relatime 0 0
/dev/nvme0n1p1 /var/lib/libvirt/images/local\\040ssd xfs rw 0 0
"""


def test_mount_fs_type_longest_match():
    assert collect_kvm.mount_fs_type("/var/lib/libvirt/images", MOUNTS) == "nfs4"
    assert collect_kvm.mount_fs_type("/var/lib/libvirt/images/local ssd", MOUNTS) == "xfs"
    assert collect_kvm.mount_fs_type("/var/lib/libvirt/images-other", MOUNTS) == "ext4"


def test_dir_pool_on_nfs_mount_is_network_storage(libvirt_test_uri, tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/vda1 / ext4 rw 0 0\nnas:/export /default-pool nfs4 rw 0 0\n")
    conn = libvirt.open(libvirt_test_uri)
    try:
        found = collect_kvm.pool_mounts(conn, libvirt_test_uri, str(mounts))
        remote = collect_kvm.pool_mounts(conn, "qemu+ssh://kvm1.example.test/system", str(mounts))
    finally:
        conn.close()
    assert found == {"default-pool": "nfs4"} and remote == {}
    host = kvm.KvmHost(cpus=8, pool_types={"default-pool": "dir"}, path_pools={"/default-pool": "default-pool"},
                       pool_mounts=found)
    [f] = kvm.check_etcd_network_storage(_vm(_disk("<source file='/default-pool/master-0.qcow2'/>")), host)
    assert f.observed == "pool default-pool (dir on a nfs4 mount)"
