"""vCenter restarting while VMs are being created: provisioning fails with one clear line, and a
destroy afterwards still removes everything that was created.

The restart is a loopback TCP proxy in front of govmomi's simulator that drops every connection
and refuses new ones for a moment, as a vCenter service restart does, while the inventory (the
simulator behind it) survives, as vCenter's database does. TLS stays end to end.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from plumbing.errors import UserError
from provision.lifecycle import destroy_cluster, provision_cluster
from provision.spec import parse_spec
from tests.restart_proxy import RestartingProxy
from tests.support.vcsim import prepare_template, start_vcsim, vsphere_spec_data

pytestmark = pytest.mark.needs_vcsim


class VcenterProxy(RestartingProxy):
    """Loopback TCP in front of the simulator; TLS passes through untouched."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = 0
        super().__init__()

    def server_socket(self) -> socket.socket:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        self.port = srv.getsockname()[1]
        srv.listen(64)
        return srv

    def upstream_socket(self) -> socket.socket:
        return socket.create_connection(self.upstream, timeout=5)


def _cluster_vms(si, name: str) -> list[str]:
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [], True)
    try:
        return sorted(o.name for o in view.view if getattr(o, "name", "").startswith(f"{name}-")
                      and o.__class__.__name__.endswith("VirtualMachine"))
    finally:
        view.Destroy()


@pytest.fixture(scope="module")
def restarted(vcsim_binary, vcsim_pki, tmp_path_factory):
    """Provision through the proxy, restart 'vCenter' once the first VM exists, then destroy."""
    sim = start_vcsim(vcsim_binary, vcsim_pki, tmp_path_factory.mktemp("vcsim"))
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("VSPHERE_USERNAME", sim.username)
            mp.setenv("VSPHERE_PASSWORD", sim.password)
            yield _scenario(sim, tmp_path_factory.mktemp("work"))
    finally:
        sim.stop()


def _scenario(sim, tmp_path):
    direct = sim.connect()
    prepare_template(direct)
    proxy = VcenterProxy((sim.host, sim.port))
    data = vsphere_spec_data(sim, name="restart", port=proxy.port)
    data["okd"] = {"guest": "testguest"}
    data["nodes"][2]["count"] = 6  # enough clones that the restart lands in the middle
    spec = parse_spec(data)
    cut, provisioning_over = threading.Event(), threading.Event()

    def restart_when_first_vm_exists():
        # Bounded by provisioning itself, not by a clock: a loaded machine only makes it later.
        while not (cut.is_set() or provisioning_over.is_set()):
            if _cluster_vms(direct, spec.name):
                cut.set()
                proxy.restart(down_s=1.5)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=restart_when_first_vm_exists, daemon=True)
    watcher.start()
    failure: BaseException | None = None
    try:
        provision_cluster(spec, tmp_path / "work")
    except BaseException as exc:  # judged by the tests, after vCenter is back
        failure = exc
    provisioning_over.set()
    watcher.join()
    assert cut.is_set(), "the restart never happened during provisioning"
    left_after_failure = _cluster_vms(direct, spec.name)
    try:
        removed = destroy_cluster(spec)
    finally:
        proxy.close()
    return {"failure": failure, "left_after_failure": left_after_failure, "removed": removed,
            "left_after_destroy": _cluster_vms(direct, spec.name), "total": len(spec.machines()),
            "password": sim.password}


def test_restart_fails_provisioning_with_one_line(restarted):
    failure = restarted["failure"]
    assert isinstance(failure, UserError), f"not a one-line UserError: {type(failure).__name__}: {failure}"
    msg = str(failure)
    assert "\n" not in msg and "Traceback" not in msg and restarted["password"] not in msg


def test_destroy_after_restart_removes_everything(restarted):
    assert 0 < len(restarted["left_after_failure"]) <= restarted["total"], "nothing was left to clean up"
    assert restarted["left_after_destroy"] == [], f"destroy left {restarted['left_after_destroy']}"
    assert restarted["removed"]
