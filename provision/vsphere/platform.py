"""VMware vSphere platform: the provision/base.py interface on top of pyVmomi.

    render(spec, out_dir)             install-config.yaml + vsphere-plan.json, no vCenter contact
    provision(spec, workdir)          VMs from the ignition files in workdir (cloned, configured, powered on)
    destroy(spec)                     this cluster's VMs and folder, idempotent
    hypervisor_facts(spec)            vCenter/ESXi versions, host CPU model, datastore type
    remove_bootstrap(spec)            delete the bootstrap VM, stop serving its ignition
    clear_ignition(spec)              after install: empty guestinfo.ignition.config.data on the VMs

The OKD steps around these (ignition generation, bootstrap/CSR/install waits) are
provision/lifecycle.py's, shared with KVM.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path

from plumbing.errors import UserError  # noqa: F401  (re-exported: callers catch vsphere.UserError)
from provision.base import ProvisionedVM, ProvisionResult
from provision.okd.ignition_server import IgnitionServer, plan_server
from provision.okd.installconfig import render_install_config
from provision.spec import ClusterSpec
from provision.vsphere.connect import session
from provision.okd.installer import ignition_paths, installer_dir
from provision.vsphere.plan import build_plan, pointer_ignition
from provision.vsphere.vms import create_vms, destroy_cluster, facts, remove_node

log = logging.getLogger("okdbench.vsphere")

PLAN_FILE = "vsphere-plan.json"

# Bootstrap ignition servers by cluster name: they outlive provision() until remove_bootstrap().
_servers: dict[str, IgnitionServer] = {}
_servers_lock = threading.Lock()


def _require(spec: ClusterSpec) -> None:
    if spec.platform != "vsphere" or spec.vsphere is None:
        raise UserError(f"platform: {spec.platform!r} spec given to the vSphere provisioner; use platform: vsphere")


def render(spec: ClusterSpec, out_dir: Path) -> list[Path]:
    _require(spec)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    install_config = out_dir / "install-config.yaml"
    install_config.write_text(render_install_config(spec))
    install_config.chmod(0o600)  # holds the pull secret
    plan = out_dir / PLAN_FILE
    plan.write_text(json.dumps(build_plan(spec, installer_dir(out_dir)), indent=2) + "\n")
    return [install_config, plan]


def _read_ignition(workdir: Path, role: str) -> bytes:
    path = ignition_paths(workdir)[role]
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"ignition: {path} is missing; run openshift-install create ignition-configs --dir "
                        f"{path.parent} (okdbench provision does)") from None


def _bootstrap_pointer(spec: ClusterSpec, full: bytes) -> tuple[bytes, IgnitionServer | None]:
    vs = spec.vsphere
    assert vs is not None
    where = plan_server(spec)
    server = None
    if where is None:
        url = vs.ignition_url
        log.info("ignition: bootstrap VM will merge %s (served outside okdbench; it must hold this bootstrap.ign)",
                 url)
    else:
        host, port, path = where
        server = IgnitionServer(full, host, port, path).start()
        url = server.url
    pointer = pointer_ignition(url, hashlib.sha512(full).hexdigest())
    return pointer.encode(), server


def provision(spec: ClusterSpec, workdir: Path, *, insecure: bool = False) -> ProvisionResult:
    _require(spec)
    workdir = Path(workdir)
    roles = sorted({m.role for m in spec.machines()})
    server = None
    if spec.okd.guest == "testguest":
        # No OKD: the guest boots from the template as is; nothing to put in guestinfo.
        ignition: dict[str, bytes | None] = {role: None for role in roles}
    else:
        ignition = {role: _read_ignition(workdir, role) for role in roles}
    if ignition.get("bootstrap") is not None:
        ignition["bootstrap"], server = _bootstrap_pointer(spec, ignition["bootstrap"])
    t0 = time.monotonic()
    try:
        with session(spec, insecure=insecure) as si:
            created = create_vms(si, spec, ignition)
            hv = facts(si, spec)
    except BaseException:
        if server is not None:
            server.stop()
        raise
    if server is not None:
        with _servers_lock:
            old = _servers.pop(spec.name, None)
            if old is not None:
                old.stop()
            _servers[spec.name] = server
    by_name = {vm_name: vm for vm_name, vm in created.vms.items()}
    vms = [ProvisionedVM(name=f"{spec.name}-{m.name}", role=m.role, mac=m.mac, ip=str(m.ip), serial_log=None,
                         ref=by_name[f"{spec.name}-{m.name}"]._moId) for m in spec.machines()]
    timings = dict(created.timings)
    timings["provision.vms.duration"] = time.monotonic() - t0
    return ProvisionResult(platform="vsphere", cluster=spec.name, vms=vms, timings=timings, facts=hv,
                           workdir=workdir, findings=list(created.findings))


def destroy(spec: ClusterSpec, *, insecure: bool = False) -> list[str]:
    _require(spec)
    _stop_server(spec.name)
    with session(spec, insecure=insecure) as si:
        return destroy_cluster(si, spec)


def hypervisor_facts(spec: ClusterSpec, *, insecure: bool = False) -> dict:
    _require(spec)
    with session(spec, insecure=insecure) as si:
        return facts(si, spec)


def remove_bootstrap(spec: ClusterSpec, *, insecure: bool = False) -> None:
    _require(spec)
    with session(spec, insecure=insecure) as si:
        removed = remove_node(si, spec, "bootstrap")
    _stop_server(spec.name)
    log.info("vsphere: bootstrap removed (%s)", ", ".join(removed) or "already gone")


def clear_ignition(spec: ClusterSpec, *, insecure: bool = False) -> list[str]:
    from provision.vsphere.scrub import clear_ignition as clear

    _require(spec)
    with session(spec, insecure=insecure) as si:
        cleared = clear(si, spec)
    log.info("vsphere: ignition guestinfo cleared on %s", ", ".join(cleared) or "no VM (none left)")
    return cleared


def _stop_server(cluster: str) -> None:
    with _servers_lock:
        server = _servers.pop(cluster, None)
    if server is not None:
        server.stop()
        log.info("ignition: stopped serving bootstrap ignition for %s", cluster)
