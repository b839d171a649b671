"""Drive `openshift-install` for a user-provisioned OKD install, platform-independently.

create ignition-configs -> (the platform boots VMs) -> wait-for bootstrap-complete -> remove the
bootstrap node -> approve node CSRs that pass provision.okd.csr -> image registry to Managed ->
wait-for install-complete. Long waits log phase, elapsed time and the time left before the
bootstrap certificates in the ignition files expire (24 h after `create ignition-configs`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from plumbing import redact
from plumbing.errors import UserError
from provision.base import ProvisionResult
from provision.okd.csr import evaluate_csr
from provision.okd.installconfig import render_install_config
from provision.spec import ClusterSpec

log = logging.getLogger(__name__)

ROLES = ("bootstrap", "master", "worker")
PROGRESS_EVERY_S = 30.0
STALL_S = 300.0  # an API that answers nothing for this long is down, not slow
_LOG_LINE = re.compile(r'level=(\w+)\s+msg="?(.*?)"?$')


class InstallError(UserError):
    """openshift-install failed or the install cannot go on. One line."""


def installer_dir(workdir: Path) -> Path:
    return Path(workdir) / "installer"


def ignition_paths(workdir: Path) -> dict[str, Path]:
    d = installer_dir(workdir)
    return {role: d / f"{role}.ign" for role in ROLES}


def _installer(spec: ClusterSpec) -> str:
    exe = shutil.which(spec.okd.installer)
    if exe is None:
        raise InstallError(f"okd.installer: {spec.okd.installer} not found on PATH; install openshift-install "
                           f"for OKD {spec.okd.version} or set okd.installer to its path")
    return exe


def ignition_age_hours(paths: dict[str, Path], now: float | None = None) -> float:
    now = time.time() if now is None else now
    return max((now - p.stat().st_mtime) / 3600.0 for p in paths.values() if p.exists())


def check_ignition_fresh(paths: dict[str, Path], max_age_hours: float, now: float | None = None) -> None:
    """Refuse ignition files older than their bootstrap certificates' validity."""
    present = {r: p for r, p in paths.items() if p.exists()}
    if not present:
        return
    age = ignition_age_hours(present, now)
    if age >= max_age_hours:
        d = next(iter(present.values())).parent
        raise InstallError(f"ignition files in {d} are {age:.1f} h old; their bootstrap certificates expire "
                           f"{max_age_hours:g} h after creation: delete {d} (or pass --regenerate) and provision again")


def create_ignition_configs(spec: ClusterSpec, workdir: Path, *, regenerate: bool = False) -> dict[str, Path]:
    """Role -> ignition file, made by `openshift-install create ignition-configs` in WORKDIR/installer.

    Fresh files from an earlier run are reused; stale ones are refused unless regenerate=True.
    """
    d = installer_dir(workdir)
    paths = ignition_paths(workdir)
    if all(p.exists() for p in paths.values()):
        try:
            check_ignition_fresh(paths, spec.kvm.ignition_max_age_hours if spec.kvm else 24.0)
            log.info("ignition: reusing %s (%.1f h old)", d, ignition_age_hours(paths))
            return paths
        except InstallError:
            if not regenerate:
                raise
            log.warning("ignition: %s is stale; regenerating", d)
    if d.exists():
        shutil.rmtree(d)
    d.parent.mkdir(parents=True, exist_ok=True)
    d.mkdir(mode=0o700)
    os.chmod(d, 0o700)  # install-config and auth/ hold the pull secret and kubeadmin credentials
    write_secret_file(d / "install-config.yaml", render_install_config(spec))
    try:
        run_installer(spec, ["create", "ignition-configs", "--dir", str(d)], phase="create ignition-configs")
    except BaseException:
        report_leftovers(workdir)
        raise
    finally:
        tighten(d)
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise InstallError(f"openshift-install create ignition-configs wrote no {', '.join(missing)}; check its log in {d}")
    for secret in ("kubeconfig", "kubeadmin-password"):
        if (d / "auth" / secret).exists():
            (d / "auth" / secret).chmod(0o600)
    redact.register_file_secrets(d / "auth" / "kubeconfig")
    redact.register_file_secrets(d / "auth" / "kubeadmin-password")
    pw = d / "auth" / "kubeadmin-password"
    if pw.exists():
        redact.register_secret(pw.read_text().strip())
    return paths


# What the installer directory holds that is secret: the pull secret (install-config.yaml), the
# ignition files (bootstrap certificates, and the pull secret in bootstrap.ign) and auth/.
SECRET_NAMES = ("install-config.yaml", "*.ign", "auth/*", ".openshift_install_state.json")


def write_secret_file(path: Path, text: str) -> None:
    """Write `text` to a file that is 0600 from its creation (no window where others can read it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_TRUNC
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fd = -1
            fh.write(text)
    finally:
        if fd >= 0:
            os.close(fd)


def tighten(d: Path) -> None:
    """Files the installer wrote: 0600, directories 0700 (it runs under umask 077 too; this is the backstop)."""
    if not d.is_dir():
        return
    for p in [d, *d.rglob("*")]:
        try:
            if p.is_symlink():
                continue
            p.chmod(0o700 if p.is_dir() else 0o600)
        except OSError:
            pass


def secret_leftovers(workdir: Path) -> list[Path]:
    d = installer_dir(workdir)
    return sorted({p for pattern in SECRET_NAMES for p in d.glob(pattern) if p.is_file()})


def report_leftovers(workdir: Path) -> None:
    """After a failure: say which secret-bearing files stay (for inspection or a retry) and how to remove them."""
    left = secret_leftovers(workdir)
    if left:
        d = installer_dir(workdir)
        names = ", ".join(str(p.relative_to(d)) for p in left[:8]) + (f" and {len(left) - 8} more" if len(left) > 8 else "")
        log.warning("left in %s (mode 0600, owner only; they hold the pull secret and cluster credentials): %s; "
                    "remove them with `rm -r %s` once you no longer need them", d, names, d)


def _fmt(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def run_installer(spec: ClusterSpec, args: list[str], *, phase: str, deadline: float | None = None,
                  env: dict[str, str] | None = None) -> float:
    """Run openshift-install, forwarding its log lines with phase and elapsed time; return seconds taken.

    `deadline` (epoch seconds) is when the ignition bootstrap certificates expire; progress lines
    show the time left.
    """
    argv = [_installer(spec), *args, "--log-level", "info"]
    t0 = time.monotonic()
    # umask 077: everything the installer writes (ignition, auth/kubeconfig, kubeadmin-password) is owner-only.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, umask=0o077)
    last_error = ""
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(PROGRESS_EVERY_S):
            log.info("%s", _progress(phase, t0, deadline))

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = redact.redact_text(raw.rstrip())
            m = _LOG_LINE.search(line)
            level, msg = (m.group(1), m.group(2)) if m else ("info", line)
            if level in ("error", "fatal"):
                last_error = msg
            if msg:
                log.log(logging.ERROR if level in ("error", "fatal") else logging.INFO,
                        "[%s %s] %s", phase, _fmt(time.monotonic() - t0), msg)
        rc = proc.wait()
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.monotonic() - t0
    if rc != 0:
        raise InstallError(f"openshift-install {phase} failed after {_fmt(elapsed)}: {last_error or f'exit {rc}'}")
    log.info("%s: done in %s", phase, _fmt(elapsed))
    return elapsed


def _progress(phase: str, t0: float, deadline: float | None) -> str:
    text = f"{phase}: still waiting, elapsed {_fmt(time.monotonic() - t0)}"
    if deadline is not None:
        text += f", bootstrap certificates expire in {_fmt(deadline - time.time())}"
    return text


# ------------------------------------------------------------------ Kubernetes side


def _api_client(kubeconfig: Path, insecure: bool):
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    if insecure:
        log.warning("--insecure: not verifying the API server's TLS certificate")
        cfg.verify_ssl = False
    return client.ApiClient(cfg)


class CsrApprover:
    """Approves pending node CSRs that pass provision.okd.csr.evaluate_csr; records the rest as findings."""

    def __init__(self, api_client: Any, node_names: set[str]):
        from kubernetes import client

        self.api = client.CertificatesV1Api(api_client)
        self.serialize = api_client.sanitize_for_serialization
        self.node_names = node_names
        self.approved: list[str] = []
        self.findings: dict[str, str] = {}  # CSR name -> one-line reason (each logged once)

    def run_once(self) -> int:
        from kubernetes import client

        approved = 0
        for obj in self.api.list_certificate_signing_request().items:
            conditions = {c.type for c in (obj.status.conditions or [])} if obj.status else set()
            if conditions & {"Approved", "Denied", "Failed"}:
                continue
            csr = self.serialize(obj)
            verdict = evaluate_csr(csr, self.node_names)
            name = obj.metadata.name
            if not verdict.approve:
                if name not in self.findings:
                    self.findings[name] = f"CSR left pending: {verdict.reason}"
                    log.warning("csr: %s", self.findings[name])
                continue
            obj.status = obj.status or client.V1CertificateSigningRequestStatus()
            obj.status.conditions = (obj.status.conditions or []) + [client.V1CertificateSigningRequestCondition(
                type="Approved", status="True", reason="OkdbenchApproved",
                message=f"okdbench: {verdict.reason}")]
            self.api.replace_certificate_signing_request_approval(name, obj)
            self.approved.append(name)
            approved += 1
            log.info("csr: approved %s", verdict.reason)
        return approved


def set_registry_managed(api_client: Any, storage_class: str | None = None) -> bool:
    """Image registry: UPI starts it `Removed`, so builds cannot push. True once patched."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api = client.CustomObjectsApi(api_client)
    storage = {"pvc": {"claim": ""}} if storage_class else {"emptyDir": {}}
    try:
        current = api.get_cluster_custom_object("imageregistry.operator.openshift.io", "v1", "configs", "cluster")
    except ApiException as exc:
        if exc.status == 404:
            return False  # operator not up yet
        raise
    spec = current.get("spec", {})
    if spec.get("managementState") == "Managed" and spec.get("storage"):
        return True
    body = {"spec": {"managementState": "Managed", "storage": storage}}
    if storage_class:
        body["spec"]["rolloutStrategy"] = "Recreate"  # a ReadWriteOnce PVC cannot be shared by two replicas
        body["spec"]["replicas"] = 1
    api.patch_cluster_custom_object("imageregistry.operator.openshift.io", "v1", "configs", "cluster", body)
    log.info("image registry: Managed with %s storage", "PVC" if storage_class else "emptyDir (POC only)")
    return True


class ClusterHousekeeper(threading.Thread):
    """Background loop during the install: approve CSRs, set the registry to Managed when it exists."""

    def __init__(self, api_client: Any, node_names: set[str], storage_class: str | None, interval_s: float = 10.0):
        super().__init__(daemon=True, name="okdbench-housekeeper")
        self.approver = CsrApprover(api_client, node_names)
        self.api_client = api_client
        self.storage_class = storage_class
        self.interval_s = interval_s
        self.registry_done = False
        self.stop_event = threading.Event()
        self.errors: list[str] = []
        self.last_progress = time.monotonic()

    def tick(self) -> None:
        self.last_progress = time.monotonic()
        try:
            self.approver.run_once()
            self.last_progress = time.monotonic()
            if not self.registry_done:
                self.registry_done = set_registry_managed(self.api_client, self.storage_class)
        except Exception as exc:  # API hiccups during install are normal; keep going, report at the end
            msg = redact.redact_text(f"{type(exc).__name__}: {exc}".splitlines()[0])
            if msg not in self.errors:
                self.errors.append(msg)
                log.debug("housekeeping: %s", msg)
        self.last_progress = time.monotonic()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.tick()
            self.stop_event.wait(self.interval_s)
        # One last pass, in this thread so two passes never race each other: CSRs created (or the
        # registry config appearing) just before install-complete returned.
        self.tick()

    def stop(self, stall_s: float = STALL_S) -> None:
        """Ask for the last pass and wait for it while the housekeeper makes progress (a slow
        machine only delays it); give up after stall_s without any."""
        self.stop_event.set()
        while self.is_alive():
            self.join(timeout=1.0)
            if self.is_alive() and time.monotonic() - self.last_progress > stall_s:
                self.errors.append(f"housekeeping made no progress for {stall_s:.0f} s; last CSR pass not waited for")
                log.warning("housekeeping: %s", self.errors[-1])
                return


def node_names(spec: ClusterSpec) -> set[str]:
    """Names the cluster's nodes may register with: FQDN hostnames of every non-bootstrap machine."""
    return {m.hostname for m in spec.machines() if m.role != "bootstrap"}


def complete_install(spec: ClusterSpec, platform: ModuleType, workdir: Path, result: ProvisionResult, *,
                     insecure: bool = False, housekeeping_interval_s: float = 10.0,
                     clock: Callable[[], float] = time.time) -> ProvisionResult:
    d = installer_dir(workdir)
    kubeconfig = d / "auth" / "kubeconfig"
    paths = ignition_paths(workdir)
    max_age = spec.kvm.ignition_max_age_hours if spec.kvm else 24.0
    created = min(p.stat().st_mtime for p in paths.values() if p.exists())
    deadline = created + max_age * 3600

    result.timings["install.bootstrap.duration"] = run_installer(
        spec, ["wait-for", "bootstrap-complete", "--dir", str(d)], phase="bootstrap-complete", deadline=deadline)
    log.info("bootstrap complete: removing the bootstrap node")
    platform.remove_bootstrap(spec, insecure=insecure)

    api_client = _api_client(kubeconfig, insecure)
    keeper = ClusterHousekeeper(api_client, node_names(spec), spec.okd.registry_storage_class,
                                interval_s=housekeeping_interval_s)
    keeper.start()
    try:
        result.timings["install.complete.duration"] = run_installer(
            spec, ["wait-for", "install-complete", "--dir", str(d)], phase="install-complete")
    finally:
        keeper.stop()
    result.kubeconfig = kubeconfig
    result.findings.extend(keeper.approver.findings.values())
    if not keeper.registry_done:
        result.findings.append("image registry was not set to Managed: its config did not appear; "
                               "builds cannot push until it is (oc patch configs.imageregistry cluster)")
    for err in keeper.errors:
        result.findings.append(f"housekeeping error during install: {err}")
    return result
