"""okdbench doctor: say what this machine has for each platform, and what is missing."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from okdbench.paths import ROOT

HELP = "check this machine: libvirt, KVM, QEMU, openshift-install, oc, vSphere simulator, kubeconfig"
DESCRIPTION = """\
Check, per platform, what okdbench needs and what is present. Exit 0 when everything required
for the chosen platform is there (all platforms when --platform is not given), 1 otherwise.

  okdbench doctor --platform kvm
  okdbench doctor --platform vsphere --kubeconfig ~/okd/auth/kubeconfig"""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required_for: tuple[str, ...]  # platforms for which a failure makes doctor fail


def add_arguments(parser) -> None:
    parser.add_argument("--platform", choices=["kvm", "vsphere"], help="only judge what this platform needs")
    parser.add_argument("--uri", default="qemu:///system", help="libvirt URI to check (default qemu:///system)")
    parser.add_argument("--kubeconfig", help="also check that this cluster's API answers")
    parser.add_argument("--insecure", action="store_true", help="do not verify the API server's TLS certificate")


def _tool(name: str, required_for: tuple[str, ...], why: str) -> Check:
    path = shutil.which(name)
    return Check(name, path is not None, path or f"not on PATH ({why})", required_for)


def _libvirt(uri: str) -> Check:
    try:
        import libvirt
    except ImportError:
        return Check("libvirtd reachable", False, "libvirt-python not installed (pip install libvirt-python)", ("kvm",))
    libvirt.registerErrorHandler(lambda *_: None, None)  # keep libvirt from printing to stderr
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        return Check("libvirtd reachable", False, f"{uri}: {exc.get_error_message()}", ("kvm",))
    try:
        return Check("libvirtd reachable", True, f"{uri}: libvirt {_ver(conn.getLibVersion())}, {conn.getType()} {_ver(conn.getVersion())}", ("kvm",))
    finally:
        conn.close()


def _ver(n: int) -> str:
    return f"{n // 1000000}.{n // 1000 % 1000}.{n % 1000}"


def _kvm_device() -> Check:
    usable = os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK)
    detail = "present and accessible" if usable else "absent or not accessible: guests run in software emulation (slow, results flagged)"
    try:
        from provision.kvm.libvirtd import domain_type

        kind = domain_type("qemu:///system")
        usable = kind == "kvm"
        detail = "guests can use KVM" if usable else "cannot run a KVM guest here: software emulation (domain type 'qemu'); results are flagged as emulated"
    except Exception:  # noqa: BLE001 - the probe is best effort; doctor still reports the device
        pass
    return Check("/dev/kvm usable", usable, detail, ())


def _vcsim() -> Check:
    cached = sorted((ROOT / ".cache").glob("vcsim*/vcsim*")) if (ROOT / ".cache").exists() else []
    if cached:
        return Check("govmomi simulator", True, f"built: {cached[0]}", ())
    go = shutil.which("go")
    src = Path("/usr/share/gocode/src/github.com/vmware/govmomi/simulator")
    ok = go is not None and src.is_dir()
    detail = "buildable (go + golang-github-vmware-govmomi-dev)" if ok else "not buildable: apt-get install golang-go golang-github-vmware-govmomi-dev"
    return Check("govmomi simulator", ok, detail + " (only the project's tests use it)", ())


def _kubeconfig(path: str, insecure: bool) -> Check:
    try:
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=path, client_configuration=cfg)
        if insecure:
            cfg.verify_ssl = False
        with client.ApiClient(cfg) as api:
            version = client.VersionApi(api).get_code(_request_timeout=10)
        return Check("kubeconfig reachable", True, f"{path}: Kubernetes {version.git_version}", ("kvm", "vsphere"))
    except Exception as exc:  # noqa: BLE001 - any failure is the answer: not reachable
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return Check("kubeconfig reachable", False, f"{path}: {reason}", ("kvm", "vsphere"))


def checks(args) -> list[Check]:
    out = [
        _libvirt(args.uri),
        _kvm_device(),
        _tool("qemu-system-x86_64", ("kvm",), "apt-get install qemu-system-x86"),
        _tool("qemu-img", ("kvm",), "apt-get install qemu-utils"),
        _tool("virt-xml-validate", (), "apt-get install libvirt-clients; used to validate rendered XML"),
        _tool("openshift-install", (), "needed to install OKD from a spec; download the OKD release's installer"),
        _tool("oc", (), "needed for must-gather on failed criteria; comes with the OKD client tools"),
        _vcsim(),
    ]
    if args.kubeconfig:
        out.append(_kubeconfig(args.kubeconfig, args.insecure))
    return out


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    results = checks(args)
    platforms = (args.platform,) if args.platform else ("kvm", "vsphere")
    table = Table(title="okdbench doctor")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    failed = False
    for c in results:
        required = any(p in c.required_for for p in platforms)
        status = "ok" if c.ok else ("MISSING" if required else "optional")
        failed |= required and not c.ok
        table.add_row(c.name, status, c.detail)
    console = Console()
    console.print(table)
    console.print("all required checks passed" if not failed else "some required checks failed (see MISSING)")
    return 1 if failed else 0
