"""KVM/libvirt platform: the provision/base.py interface on top of libvirt-python.

    render(spec, out_dir)        install-config, network/domain XML, haproxy.cfg, node ignition; no libvirt
    provision(spec, workdir)     network, qcow2 overlay volumes, domains started in parallel; rollback on failure
    destroy(spec)                exactly what provision created (ownership metadata), idempotent
    hypervisor_facts(spec)       libvirt/QEMU versions, host CPU, domain type
    remove_bootstrap(spec)       the bootstrap domain and volume; the load balancer stops sending to it
    clear_ignition(spec)         after install: ignition fw_cfg entries and files removed from the host

Domain type: spec.kvm.domain_type. 'auto' is resolved at provision time by a real probe
(provision.kvm.libvirtd.domain_type(uri)); render never probes and writes the KVM host's XML for it,
so its output depends on the spec alone.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from provision.kvm import resources as kvm_provision
from provision.okd import installer as okd
from provision.base import ProvisionedVM, ProvisionResult
from provision.okd.installconfig import render_install_config
from provision.kvm.render import (kvm_section, domain_name, render_all, render_haproxy, render_volume,
                                  serial_log_path)
from provision.kvm.libvirtd import domain_type as probe_domain_type
from provision.kvm.libvirtd import libvirtd_in_netns
from provision.spec import ClusterSpec, SpecError

log = logging.getLogger(__name__)

LB_RUN_DIR = Path("/run/okdbench")


def _require(spec: ClusterSpec) -> None:
    if spec.platform != "kvm" or spec.kvm is None:
        raise SpecError(f"platform: {spec.platform!r} spec given to the KVM provisioner; use platform: kvm")


def resolve_domain_type(spec: ClusterSpec) -> str:
    """The domain type to create on this host: 'auto' probes whether KVM really runs a guest."""
    kvm = kvm_section(spec)
    return probe_domain_type(kvm.uri) if kvm.domain_type == "auto" else kvm.domain_type


def rendered_domain_type(spec: ClusterSpec) -> str:
    """The domain type `render` writes without touching the host: 'auto' renders as 'kvm' (what a
    KVM host gets; provision re-renders with 'qemu' where KVM cannot run a guest)."""
    kvm = kvm_section(spec)
    return "kvm" if kvm.domain_type == "auto" else kvm.domain_type


def _testguest_cmdline(extra: str | None):
    from provision.kvm import testguest

    return lambda spec, m: testguest.kernel_cmdline(spec, m, extra)


def render(spec: ClusterSpec, out_dir: Path, *, dom_type: str | None = None,
           guest_cmdline_extra: str | None = None) -> list[Path]:
    """Every file of the cluster, without touching libvirt or the host. Same spec + out_dir -> same
    bytes on any machine. dom_type overrides the domain type (provision passes the resolved one)."""
    _require(spec)
    dom_type = dom_type or rendered_domain_type(spec)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    installer_ign = None
    if spec.okd.guest == "fcos":
        ic = out_dir / "install-config.yaml"
        text = render_install_config(spec)
        if not ic.exists() or ic.read_text() != text:
            ic.write_text(text)
        ic.chmod(0o600)  # holds the pull secret
        paths.append(ic)
        ign = okd.ignition_paths(out_dir)
        installer_ign = ign if all(p.exists() for p in ign.values()) else None
    cmdline = _testguest_cmdline(guest_cmdline_extra) if spec.okd.guest == "testguest" else None
    paths += render_all(spec, out_dir, dom_type, installer_ign, cmdline)
    return sorted(paths)


def _make_reachable(workdir: Path) -> None:
    """libvirt's QEMU runs as an unprivileged user: it must traverse to the ignition, serial and
    kernel files. Directories get o+x (traverse, not list)."""
    for d in [workdir, *workdir.parents]:
        if d == Path("/"):
            break
        mode = d.stat().st_mode
        if not mode & 0o001:
            os.chmod(d, mode | 0o001)
            log.info("kvm: %s made traversable (o+x) so libvirt's qemu user reaches the VM files", d)


def provision(spec: ClusterSpec, workdir: Path, *, insecure: bool = False,
              guest_cmdline_extra: str | None = None) -> ProvisionResult:
    _require(spec)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    kvm = kvm_section(spec)
    with kvm_provision.connect(spec) as conn:
        plan = kvm_provision.preflight(conn, spec)
        dom_type = resolve_domain_type(spec)
        if spec.okd.guest == "fcos":
            okd.check_ignition_fresh(okd.ignition_paths(workdir), kvm.ignition_max_age_hours)
            if not all(p.exists() for p in okd.ignition_paths(workdir).values()):
                raise okd.InstallError(f"no ignition files in {okd.installer_dir(workdir)}; "
                                       "run through provision.lifecycle.provision_cluster (it creates them)")
        (workdir / "serial").mkdir(exist_ok=True)
        render(spec, workdir, dom_type=dom_type, guest_cmdline_extra=guest_cmdline_extra)
        _make_reachable(workdir)
        for sub in ("serial", "ignition", "domains"):
            (workdir / sub).chmod(0o755)
        machines = spec.machines()
        net_xml = (workdir / "network.xml").read_text()
        dom_xmls = [(workdir / "domains" / f"{domain_name(spec, m)}.xml").read_text() for m in machines]
        vol_xmls = [render_volume(spec, m, plan.base_path, plan.base_format) for m in machines]
        log.info("kvm: creating network %s, %d volume(s), %d domain(s) (type %s) on %s",
                 plan.network_name, len(vol_xmls), len(dom_xmls), dom_type, kvm.uri)
        domains, seconds = kvm_provision.create(conn, spec, plan, net_xml, vol_xmls, dom_xmls)
        log.info("kvm: %d domain(s) running after %.1f s", len(domains), seconds)
        vms = [ProvisionedVM(name=domain_name(spec, m), role=m.role, mac=m.mac, ip=str(m.ip),
                             serial_log=serial_log_path(workdir, spec, m), ref=d.UUIDString())
               for m, d in zip(machines, domains)]
        facts = kvm_provision.facts(conn, dom_type)
    result = ProvisionResult(platform="kvm", cluster=spec.name, vms=vms, timings={"provision.vms.duration": seconds},
                             facts=facts, workdir=workdir, kubeconfig=None, findings=[])
    if spec.okd.guest == "fcos":
        try:
            _start_lb(spec, workdir)
        except BaseException:
            with kvm_provision.connect(spec) as conn:
                kvm_provision.destroy(conn, spec)
            raise
    return result


def destroy(spec: ClusterSpec, *, insecure: bool = False) -> list[str]:
    _require(spec)
    with kvm_provision.connect(spec) as conn:
        removed = kvm_provision.destroy(conn, spec)
    if _stop_lb(spec):
        removed.append(f"haproxy of {spec.name}")
    for item in removed:
        log.info("kvm: removed %s", item)
    return removed


def hypervisor_facts(spec: ClusterSpec, *, insecure: bool = False) -> dict:
    _require(spec)
    with kvm_provision.connect(spec) as conn:
        return kvm_provision.facts(conn, resolve_domain_type(spec))


def remove_bootstrap(spec: ClusterSpec, *, insecure: bool = False) -> None:
    _require(spec)
    cfg = _lb_paths(spec)[0]
    if cfg.exists():
        cfg.write_text(render_haproxy(spec, with_bootstrap=False))
        _start_lb(spec, None, reload=True)
    with kvm_provision.connect(spec) as conn:
        for item in kvm_provision.destroy(conn, spec, only_nodes={"bootstrap"}):
            log.info("kvm: removed %s", item)


def clear_ignition(spec: ClusterSpec, *, insecure: bool = False) -> list[str]:
    from provision.kvm.scrub import clear_ignition as clear

    _require(spec)
    with kvm_provision.connect(spec) as conn:
        cleared = clear(conn, spec)
    log.info("kvm: ignition cleared from the host (%s)", ", ".join(cleared) or "none left")
    return cleared


# ------------------------------------------------------------------ load balancer (haproxy on the host)


def _lb_paths(spec: ClusterSpec) -> tuple[Path, Path]:
    return LB_RUN_DIR / f"{spec.name}-haproxy.cfg", LB_RUN_DIR / f"{spec.name}-haproxy.pid"


def _netns_prefix() -> list[str]:
    # haproxy must bind the bridge address, which lives in libvirtd's network namespace.
    return ["ip", "netns", "exec", "okdbench"] if libvirtd_in_netns("okdbench") else []


def _start_lb(spec: ClusterSpec, workdir: Path | None, *, reload: bool = False) -> None:
    cfg, pidfile = _lb_paths(spec)
    LB_RUN_DIR.mkdir(parents=True, exist_ok=True)
    if workdir is not None:
        cfg.write_text((workdir / "haproxy.cfg").read_text())
    argv = [*_netns_prefix(), "haproxy", "-D", "-f", str(cfg), "-p", str(pidfile)]
    if reload and pidfile.exists():
        argv += ["-sf", *pidfile.read_text().split()]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise kvm_provision.KvmError(f"kvm: cannot start haproxy for {spec.name}: {err}; "
                                     "install haproxy or free ports 6443/22623/80/443 on the LB address; the cluster's VMs were removed")
    log.info("kvm: haproxy %s for %s (%s)", "reloaded" if reload else "started", spec.name, cfg)


def _stop_lb(spec: ClusterSpec) -> bool:
    cfg, pidfile = _lb_paths(spec)
    if not pidfile.exists():
        cfg.unlink(missing_ok=True)
        return False
    for pid in pidfile.read_text().split():
        try:
            os.kill(int(pid), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
    pidfile.unlink(missing_ok=True)
    cfg.unlink(missing_ok=True)
    time.sleep(0.1)
    return True
