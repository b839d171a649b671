"""Provision and destroy on a real libvirtd + QEMU (in network namespace `okdbench`), with the test guest.

What the busybox test guest proves: ignition arrives through fw_cfg byte for byte, the NIC carries
the reserved MAC, libvirt's DHCP hands out the reserved IP and its DNS answers api.<cluster>.
What it cannot prove: that the systemd .link file renames the NIC to okd0 — the guest has no
udev/systemd, so its NIC keeps the kernel's name (eth0, stable: one virtio NIC). The .link and
keyfile contents are asserted byte-exact inside the ignition the guest received.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from plumbing.errors import UserError
from provision.kvm import platform as kvm
from provision.kvm import resources as kvm_provision
from provision.kvm import render as kvm_render
from provision.spec import parse_spec

pytestmark = [pytest.mark.needs_libvirtd]

ROOT = Path(__file__).resolve().parents[1]
TAG = f"{os.getpid() % 100000}"
SUBNET = f"198.19.{100 + os.getpid() % 100}.0/24"


def _libvirt(uri):
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    return libvirt.open(uri)


@pytest.fixture(scope="session")
def vmroot():
    """Files QEMU opens (volumes, ignition, serial logs) live outside pytest's tmp root: pytest
    resets /tmp/pytest-of-<user> to 0700 whenever any session starts, which would lock libvirt's
    qemu user out mid-run when other test sessions run concurrently."""
    d = ROOT / ".cache" / "kvm-tests" / TAG
    d.mkdir(parents=True, exist_ok=True)
    for p in (d, d.parent, d.parent.parent):
        p.chmod(p.stat().st_mode | 0o011)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def vmdir(vmroot, request) -> Path:
    d = vmroot / re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def pool(libvirt_uri, vmroot):
    """A directory storage pool of its own, removed at the end of the session."""
    d = vmroot / "pool"
    d.mkdir()
    name = f"okdbench-t{TAG}"
    conn = _libvirt(libvirt_uri)
    p = conn.storagePoolDefineXML(f"<pool type='dir'><name>{name}</name><target><path>{d}</path></target></pool>")
    p.create()
    yield name
    for vol in p.listAllVolumes():
        vol.delete(0)
    p.destroy()
    p.undefine()
    conn.close()


def guest_spec(test_guest, pool_name: str, name: str, masters: int = 3, **kvm_extra) -> object:
    data = {
        "name": name, "base_domain": "okdbench.test", "platform": "kvm",
        "okd": {"guest": "testguest"},
        "network": {"machine_cidr": SUBNET},
        "nodes": [{"role": "master", "count": masters, "vcpu": 1, "memory": "256MiB", "disk": "1GiB"}],
        "kvm": {"storage_pool": pool_name, "kernel": str(test_guest.kernel), "initrd": str(test_guest.initrd),
                "domain_type": "auto", **kvm_extra},
    }
    return parse_spec(data)


def _wait_done(logs: list[Path], limit_s: float = 150.0) -> dict[Path, str]:
    # A guard against a hung guest, not a timing assertion: three guests finish in ~10 s here.
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        texts = {p: p.read_text(errors="replace") if p.exists() else "" for p in logs}
        if all("OKDBENCH done" in t for t in texts.values()):
            return texts
        time.sleep(0.5)
    pytest.fail(f"test guests did not finish within {limit_s:.0f} s: "
                + "; ".join(f"{p.name}: {t.strip().splitlines()[-1:] if t else 'empty'}" for p, t in texts.items()))


def _fact(text: str, key: str) -> dict[str, str]:
    line = next(l for l in text.splitlines() if l.startswith(f"OKDBENCH {key} "))
    return dict(re.findall(r"(\w+)=(\S+)", line))


@pytest.mark.slow
def test_three_guests_get_ignition_mac_ip_dns_and_destroy_removes_only_ours(libvirt_uri, pool, test_guest, vmdir):
    tmp_path = vmdir
    spec = guest_spec(test_guest, pool, f"it{TAG}")
    conn = _libvirt(libvirt_uri)
    # Unrelated things that look like ours must survive destroy.
    other_net = conn.networkDefineXML(f"<network><name>unrelated-{TAG}</name></network>")
    other_dom = conn.defineXML(
        f"<domain type='qemu'><name>{spec.name}-master-9</name><memory unit='MiB'>64</memory>"
        "<os><type arch='x86_64'>hvm</type></os></domain>")
    pool_obj = conn.storagePoolLookupByName(pool)
    other_vol = pool_obj.createXML(f"<volume><name>{spec.name}-worker-0.qcow2</name><capacity>1048576</capacity>"
                                   "<target><format type='qcow2'/></target></volume>", 0)
    try:
        try:
            result = kvm.provision(spec, tmp_path / "work")
            assert result.facts["domain_type"] in ("qemu", "kvm") and result.facts["libvirt_version"]
            assert "provision.vms.duration" in result.timings
            _check_guests(spec, result, tmp_path / "work")
        finally:
            removed = kvm.destroy(spec)
        assert sorted(removed) == sorted(
            [f"domain {spec.name}-master-{i}" for i in range(3)] + [f"network okd-{spec.name}"]
            + [f"volume {pool}/{spec.name}-master-{i}.qcow2" for i in range(3)])
        assert kvm.destroy(spec) == []  # idempotent
        assert conn.networkLookupByName(f"unrelated-{TAG}")
        assert conn.lookupByName(f"{spec.name}-master-9")
        pool_obj.refresh(0)
        assert pool_obj.storageVolLookupByName(f"{spec.name}-worker-0.qcow2")
    finally:
        other_dom.undefine()
        other_net.undefine()
        other_vol.delete(0)
        conn.close()


def _check_guests(spec, result, workdir: Path) -> None:
    texts = _wait_done([vm.serial_log for vm in result.vms])
    machines = {kvm_render.domain_name(spec, m): m for m in spec.machines()}
    for vm in result.vms:
        m = machines[vm.name]
        text = texts[vm.serial_log]
        ign = kvm_render.ignition_path(workdir, spec, m).read_bytes()
        got = _fact(text, "ignition")
        assert (got["sha256"], got["bytes"]) == (hashlib.sha256(ign).hexdigest(), str(len(ign)))
        decoded = urllib.parse.unquote(ign.decode())
        # the .link file and keyfile the guest received match its own MAC
        assert f"[Match]\nMACAddress={m.mac}\n\n[Link]\nName=okd0" in decoded
        assert f"mac-address={m.mac.upper()}" in decoded
        nic = _fact(text, "nic")
        assert nic["mac"] == m.mac == vm.mac
        assert nic["name"] == "eth0"  # kernel name: busybox has no udev to apply the .link file
        assert _fact(text, "dhcp")["ip"] == str(m.ip) == vm.ip
        assert _fact(text, "dhcp")["hostname"] == m.name
        dns = _fact(text, "dns")
        assert dns["name"] == f"api.{spec.cluster_domain}"
        assert dns["api"] == str(kvm_render.net_plan(spec).api_ip)


def test_failed_start_rolls_everything_back(libvirt_uri, pool, test_guest, vmdir):
    tmp_path = vmdir
    bogus = tmp_path / "not-a-kernel"
    bogus.write_bytes(b"\0" * 4096)  # preflight sees a file; QEMU refuses to boot it
    bogus.chmod(0o644)
    spec = guest_spec(test_guest, pool, f"rb{TAG}", masters=2)
    spec = spec.model_copy(update={"kvm": spec.kvm.model_copy(update={"kernel": str(bogus)})})
    with pytest.raises(UserError) as exc:
        kvm.provision(spec, tmp_path / "work")
    msg = str(exc.value)
    assert "\n" not in msg and "everything created so far was removed" in msg
    conn = _libvirt(libvirt_uri)
    try:
        assert not [d for d in conn.listAllDomains(0) if d.name().startswith(f"{spec.name}-")]
        assert f"okd-{spec.name}" not in conn.listNetworks() + conn.listDefinedNetworks()
        p = conn.storagePoolLookupByName(pool)
        p.refresh(0)
        assert not [v for v in p.listVolumes() if v.startswith(f"{spec.name}-")]
    finally:
        conn.close()
    assert kvm.destroy(spec) == []


def _assert_one_line_nothing_created(libvirt_uri, spec, tmp_path, needle):
    with pytest.raises(UserError) as exc:
        kvm.provision(spec, tmp_path / "w")
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg, msg
    conn = _libvirt(libvirt_uri)
    try:
        assert f"okd-{spec.name}" not in conn.listNetworks() + conn.listDefinedNetworks()
    finally:
        conn.close()
    return msg


def test_missing_pool(libvirt_uri, test_guest, tmp_path):
    spec = guest_spec(test_guest, "no-such-pool", f"np{TAG}")
    msg = _assert_one_line_nothing_created(libvirt_uri, spec, tmp_path, "kvm.storage_pool: pool 'no-such-pool' does not exist")
    assert "virsh pool-define-as" in msg


def test_missing_base_image(libvirt_uri, pool, tmp_path):
    spec = parse_spec({
        "name": f"bi{TAG}", "base_domain": "okdbench.test", "platform": "kvm", "network": {"machine_cidr": SUBNET},
        "nodes": [{"role": "master", "count": 1, "vcpu": 1, "memory": "1GiB", "disk": "10GiB"}],
        "kvm": {"storage_pool": pool, "base_image": "fedora-coreos-missing.qcow2", "domain_type": "qemu"}})
    # fcos provisioning goes through lifecycle (ignition first); the platform step alone checks the base image
    _assert_one_line_nothing_created(libvirt_uri, spec, tmp_path, "kvm.base_image: 'fedora-coreos-missing.qcow2' is not a volume")


def test_name_collision_with_foreign_domain(libvirt_uri, pool, test_guest, tmp_path):
    spec = guest_spec(test_guest, pool, f"nc{TAG}", masters=1)
    conn = _libvirt(libvirt_uri)
    dom = conn.defineXML(f"<domain type='qemu'><name>{spec.name}-master-0</name><memory unit='MiB'>64</memory>"
                         "<os><type arch='x86_64'>hvm</type></os></domain>")
    try:
        _assert_one_line_nothing_created(libvirt_uri, spec, tmp_path, f"domain '{spec.name}-master-0' already exists")
        assert kvm.destroy(spec) == []  # not ours: destroy leaves it
        assert conn.lookupByName(f"{spec.name}-master-0")
    finally:
        dom.undefine()
        conn.close()


def test_libvirt_unreachable_is_one_line(test_guest, tmp_path):
    spec = guest_spec(test_guest, "default", f"lu{TAG}", uri="qemu+unix:///system?socket=/nonexistent/libvirt-sock")
    with pytest.raises(UserError) as exc:
        kvm.provision(spec, tmp_path / "w")
    assert str(exc.value).startswith("kvm.uri: cannot reach libvirt at qemu+unix:///system") and "\n" not in str(exc.value)


def test_cli_exit_2_on_missing_pool(libvirt_uri, test_guest, tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        f"name: cl{TAG}\nbase_domain: okdbench.test\nplatform: kvm\nokd: {{guest: testguest}}\n"
        f"network: {{machine_cidr: {SUBNET}}}\n"
        "nodes: [{role: master, count: 1, vcpu: 1, memory: 256MiB, disk: 1GiB}]\n"
        f"kvm: {{storage_pool: nope-{TAG}, kernel: {test_guest.kernel}, initrd: {test_guest.initrd}}}\n")
    for cmd in (["provision", "--spec", str(spec_file), "--workdir", str(tmp_path / "w")],
                ["destroy", "--spec", str(spec_file)]):
        proc = subprocess.run([sys.executable, "-m", "okdbench", *cmd], capture_output=True, text=True, cwd=ROOT)
        if cmd[0] == "destroy":
            assert proc.returncode == 0 and "nothing to remove" in proc.stdout
        else:
            assert proc.returncode == 2, proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1 and f"pool 'nope-{TAG}' does not exist" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("fake_cluster", ["empty"], indirect=True)
def test_okd_lifecycle_on_libvirt_with_fake_installer(libvirt_uri, pool, vmdir, fake_cluster, monkeypatch):
    """The fcos path end to end, minus a real FCOS: qcow2 overlays on a (blank) base image, haproxy
    in the netns, openshift-install (fake) against a fake API, bootstrap removal, destroy."""
    import libvirt

    from provision import lifecycle

    conn = _libvirt(libvirt_uri)
    p = conn.storagePoolLookupByName(pool)
    base = p.createXML("<volume><name>fcos-blank.qcow2</name><capacity unit='MiB'>64</capacity>"
                       "<target><format type='qcow2'/></target></volume>", 0)
    monkeypatch.setenv("FAKE_OI_KUBECONFIG", str(fake_cluster.kubeconfig))
    spec = parse_spec({
        "name": f"lc{TAG}", "base_domain": "okdbench.test", "platform": "kvm",
        "okd": {"installer": str(ROOT / "tests" / "fakebin" / "openshift-install")},
        "network": {"machine_cidr": SUBNET},
        "nodes": [{"role": "bootstrap", "count": 1, "vcpu": 1, "memory": "128MiB", "disk": "1GiB"},
                  {"role": "master", "count": 1, "vcpu": 1, "memory": "128MiB", "disk": "1GiB"}],
        "kvm": {"storage_pool": pool, "base_image": "fcos-blank.qcow2", "domain_type": "auto"}})
    try:
        result = lifecycle.provision_cluster(spec, vmdir / "work")
        assert {"provision.vms.duration", "install.bootstrap.duration", "install.complete.duration"} <= set(result.timings)
        assert result.kubeconfig and result.kubeconfig.exists()
        names = {d.name() for d in conn.listAllDomains(0)}
        assert f"{spec.name}-master-0" in names and f"{spec.name}-bootstrap" not in names  # bootstrap removed
        # Install complete: the ignition (pull secret) is gone from the host and from the persistent domain.
        master = conn.lookupByName(f"{spec.name}-master-0")
        assert "fwcfg" not in master.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) and master.isActive()
        assert not list((vmdir / "work" / "ignition").glob(f"{spec.name}-master-0.ign"))
        p.refresh(0)
        overlay = p.storageVolLookupByName(f"{spec.name}-master-0.qcow2")
        assert f"<path>{base.path()}</path>" in overlay.XMLDesc(0)  # a qcow2 overlay on the base image
        lb_cfg = kvm.LB_RUN_DIR / f"{spec.name}-haproxy.cfg"
        assert "server bootstrap" not in lb_cfg.read_text() and "server master-0" in lb_cfg.read_text()
        pid = int((kvm.LB_RUN_DIR / f"{spec.name}-haproxy.pid").read_text().split()[0])
        assert Path(f"/proc/{pid}").exists()
    finally:
        removed = kvm.destroy(spec)
        base.delete(0)
        conn.close()
    assert f"haproxy of {spec.name}" in removed and f"network okd-{spec.name}" in removed
    assert kvm.destroy(spec) == []
