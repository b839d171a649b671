"""libvirtd restarting while a cluster's domains are being defined: provisioning fails with one
clear line; its rollback reconnects and removes what it created when libvirtd comes back in time,
and otherwise says what is left and that `okdbench destroy --spec ...` removes it -- which it does.

The restart is a proxy on libvirt's UNIX socket (kvm.uri = qemu:///system?socket=PROXY) that reads
libvirt's RPC framing and, at the third domain definition, drops every connection and refuses new
ones -- as a libvirtd restart does -- while the daemon behind it, like a restarted libvirtd, still
knows every object defined so far. Two restarts: a brief one (back well within the rollback's
reconnect window) and one that lasts until provisioning has given up. The shared libvirtd of the
test session is never really restarted: other tests keep using it.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from pathlib import Path

import pytest

import yaml

from plumbing.errors import UserError
from provision.kvm import platform as kvm
from provision.kvm import resources as kvm_provision
from provision.spec import load_spec
from tests.restart_proxy import RestartingProxy

pytestmark = [pytest.mark.needs_libvirtd]

ROOT = Path(__file__).resolve().parents[1]
REAL_SOCKET = "/var/run/libvirt/libvirt-sock"
REMOTE_PROGRAM = 0x20008086
DEFINE_PROCS = {11, 350}  # REMOTE_PROC_DOMAIN_DEFINE_XML, ..._DEFINE_XML_FLAGS
TAG = f"{os.getpid() % 100000}"


class LibvirtdRestartProxy(RestartingProxy):
    """A unix socket in front of libvirtd that 'restarts' it at the Nth domain definition.

    down_s: seconds the restarting libvirtd refuses connections; None = until come_back().
    """

    def __init__(self, path: Path, cut_at_define: int, down_s: float | None):
        self.path = str(path)
        self.cut_at_define = cut_at_define
        self.down_s = down_s
        self.defines = 0
        self.cut = threading.Event()
        super().__init__()

    def server_socket(self) -> socket.socket:
        if os.path.exists(self.path):
            os.unlink(self.path)
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(self.path)
        srv.listen(16)
        return srv

    def upstream_socket(self) -> socket.socket:
        up = socket.socket(socket.AF_UNIX)
        up.connect(REAL_SOCKET)
        return up

    def forward(self, src: socket.socket, dst: socket.socket) -> None:
        buf = b""
        try:
            while data := src.recv(65536):
                buf += data
                # libvirt RPC: 4-byte total length, then program, version, procedure, ...
                while len(buf) >= 16:
                    (length,) = struct.unpack(">I", buf[:4])
                    if len(buf) < length:
                        break
                    msg, buf = buf[:length], buf[length:]
                    program, _, procedure = struct.unpack(">III", msg[4:16])
                    if program == REMOTE_PROGRAM and procedure in DEFINE_PROCS:
                        self.defines += 1
                        if self.defines == self.cut_at_define and not self.cut.is_set():
                            self.cut.set()
                            threading.Thread(target=self.restart, args=(self.down_s,), daemon=True).start()
                            return  # this definition never reaches the daemon
                    dst.sendall(msg)
        except OSError:
            pass
        finally:
            self.shut(src, dst)


def _libvirt():
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    return libvirt


def _provision_through_restart(libvirt_uri, test_guest, tmp_path_factory, scenario: str, down_s: float | None,
                               subnet: str):
    libvirt = _libvirt()
    vmroot = ROOT / ".cache" / "kvm-faults" / f"{scenario}{TAG}"
    vmroot.mkdir(parents=True, exist_ok=True)
    for p in (vmroot, vmroot.parent, vmroot.parent.parent):
        p.chmod(p.stat().st_mode | 0o011)
    direct = libvirt.open(libvirt_uri)
    pool_name = f"okdbench-{scenario}{TAG}"
    (vmroot / "pool").mkdir(exist_ok=True)
    pool = direct.storagePoolDefineXML(
        f"<pool type='dir'><name>{pool_name}</name><target><path>{vmroot / 'pool'}</path></target></pool>")
    pool.create()
    proxy = LibvirtdRestartProxy(tmp_path_factory.mktemp("sock") / "libvirt-sock", cut_at_define=3, down_s=down_s)
    name = f"{scenario}{TAG}"
    spec_path = vmroot / "cluster.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": name, "base_domain": "okdbench.test", "platform": "kvm", "okd": {"guest": "testguest"},
        "network": {"machine_cidr": subnet},
        "nodes": [{"role": "master", "count": 5, "vcpu": 1, "memory": "256MiB", "disk": "1GiB"}],
        "kvm": {"uri": f"qemu:///system?socket={proxy.path}", "storage_pool": pool_name, "domain_type": "qemu",
                "kernel": str(test_guest.kernel), "initrd": str(test_guest.initrd)},
    }))
    spec = load_spec(spec_path)

    def leftovers():
        doms = sorted(d.name() for d in direct.listAllDomains() if d.name().startswith(f"{name}-"))
        pool.refresh(0)
        vols = sorted(v.name() for v in pool.listAllVolumes())
        nets = sorted(n.name() for n in direct.listAllNetworks() if name in n.name())
        return doms + vols + nets

    failure = None
    try:
        try:
            kvm.provision(spec, vmroot / "work")
        except BaseException as exc:  # judged by the tests
            failure = exc
        after_failure = leftovers()
        proxy.come_back()
        proxy.up.wait(10)  # the 'restarted' libvirtd accepts again
        removed = kvm.destroy(spec)
        after_destroy = leftovers()
        yield {"failure": failure, "cut": proxy.cut.is_set(), "after_failure": after_failure, "removed": removed,
               "after_destroy": after_destroy, "spec_path": spec_path}
    finally:
        proxy.close()
        for d in direct.listAllDomains():
            if d.name().startswith(f"{name}-"):
                if d.isActive():
                    d.destroy()
                d.undefine()
        for v in pool.listAllVolumes():
            v.delete(0)
        pool.destroy()
        pool.undefine()
        for n in direct.listAllNetworks():
            if name in n.name():
                if n.isActive():
                    n.destroy()
                n.undefine()
        direct.close()


@pytest.fixture(scope="module")
def restarted(libvirt_uri, test_guest, tmp_path_factory):
    """libvirtd stays down until provisioning has failed: its rollback cannot reach it."""
    yield from _provision_through_restart(libvirt_uri, test_guest, tmp_path_factory, "lvr", None,
                                          f"198.19.{200 + os.getpid() % 50}.0/24")


@pytest.fixture(scope="module")
def restarted_briefly(libvirt_uri, test_guest, tmp_path_factory):
    """libvirtd is back after 1.5 s, well within the rollback's reconnect window."""
    assert 1.5 * 3 < kvm_provision.ROLLBACK_RECONNECT_S
    yield from _provision_through_restart(libvirt_uri, test_guest, tmp_path_factory, "lvb", 1.5,
                                          f"198.18.{200 + os.getpid() % 50}.0/24")


def test_restart_fails_provisioning_with_one_line(restarted):
    assert restarted["cut"], "the restart never happened during provisioning"
    failure = restarted["failure"]
    assert isinstance(failure, UserError), f"not a one-line UserError: {type(failure).__name__}: {failure}"
    assert "\n" not in str(failure) and "Traceback" not in str(failure)


def test_destroy_after_restart_removes_everything(restarted):
    assert restarted["after_failure"], "provisioning left nothing behind: nothing for destroy to prove"
    assert restarted["after_destroy"] == [], f"destroy left {restarted['after_destroy']}"


def test_failure_message_does_not_claim_a_rollback_that_failed(restarted):
    assert restarted["after_failure"]
    assert "everything created so far was removed" not in str(restarted["failure"])
    assert "destroy" in str(restarted["failure"])
    assert f"okdbench destroy --spec {restarted['spec_path']}" in str(restarted["failure"])


def test_failure_message_names_what_is_left(restarted):
    msg = str(restarted["failure"])
    assert "\n" not in msg
    for item in restarted["after_failure"]:
        assert item in msg, f"{item} is left but the message does not say so: {msg}"


def test_brief_restart_rollback_reconnects_and_removes_everything(restarted_briefly):
    assert restarted_briefly["cut"], "the restart never happened during provisioning"
    failure = restarted_briefly["failure"]
    assert isinstance(failure, UserError), f"not a one-line UserError: {type(failure).__name__}: {failure}"
    assert "\n" not in str(failure)
    assert restarted_briefly["after_failure"] == [], f"rollback left {restarted_briefly['after_failure']}"
    assert "everything created so far was removed" in str(failure)
    assert restarted_briefly["removed"] == [] and restarted_briefly["after_destroy"] == []
