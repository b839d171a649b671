"""Make a libvirtd reachable on qemu:///system, started inside a network namespace when none runs.

Bridges, taps and libvirt's dnsmasq belong to the namespace of the libvirtd that creates them,
so a libvirtd started in its own netns keeps every VM network off the machine's network.
The unix socket lives in the shared filesystem and is reachable from outside the namespace.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from plumbing.errors import UserError

log = logging.getLogger(__name__)

SYSTEM_URI = "qemu:///system"
_PIDFILE = Path("/run/libvirtd.pid")
_VIRTLOGD_SOCK = Path("/run/libvirt/virtlogd-sock")
_LOCK = Path("/run/okdbench-libvirtd.lock")
_START_STALL_S = 30.0  # no reachable socket and no CPU used by libvirtd for this long: it is stuck


def _quiet_libvirt():
    """libvirt prints every error to stderr by default; we report errors ourselves, one line each."""
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def open_connection(uri: str):
    """A libvirt connection, or one line naming kvm.uri and the fix."""
    libvirt = _quiet_libvirt()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise UserError(f"kvm.uri: cannot connect to {uri}: {exc.get_error_message()}; start libvirtd or fix kvm.uri") from None


def reachable(uri: str = SYSTEM_URI) -> bool:
    libvirt = _quiet_libvirt()
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return False
    try:
        conn.getLibVersion()
        return True
    except libvirt.libvirtError:
        return False
    finally:
        conn.close()


def _netns_inode(netns: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{netns}").st_ino
    except FileNotFoundError:
        return None


def _pid_netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except (FileNotFoundError, PermissionError):
        return None


def libvirtd_pid() -> int | None:
    try:
        pid = int(_PIDFILE.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def libvirtd_in_netns(netns: str = "okdbench") -> bool:
    """True when the running libvirtd lives in network namespace `netns` (so its VM networks do too)."""
    pid = libvirtd_pid()
    ns = _netns_inode(netns)
    return pid is not None and ns is not None and _pid_netns_inode(pid) == ns


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise UserError(f"cannot {what}: {' '.join(argv)} failed: {detail[-1] if detail else proc.returncode}")


def _ensure_netns(netns: str) -> None:
    if _netns_inode(netns) is None:
        _run(["ip", "netns", "add", netns], f"create network namespace {netns}")
    _run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], f"bring lo up in {netns}")


def _virtlogd_alive() -> bool:
    import socket

    if not _VIRTLOGD_SOCK.exists():
        return False
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(str(_VIRTLOGD_SOCK))
        return True
    except OSError:
        return False
    finally:
        s.close()


def fix_kvm_device_permissions() -> bool:
    """Give /dev/kvm Debian's udev permissions (root:kvm 0660) when no udev set them.

    Without them libvirt's QEMU user (in group kvm) cannot open /dev/kvm while libvirtd's
    capability probe (as root) could: libvirt then finds its QEMU capability cache "outdated"
    on every call and re-probes every emulator, 10-30 s per API call (measured here: a
    3-domain provision took 9-11 min instead of seconds). True when something was changed.
    """
    import grp

    try:
        st = os.stat("/dev/kvm")
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except (FileNotFoundError, KeyError):
        return False
    if st.st_gid == kvm_gid and st.st_mode & 0o060 == 0o060:
        return False
    if os.geteuid() != 0:
        log.warning("/dev/kvm is not root:kvm 0660; libvirt will re-probe QEMU on every call (slow)")
        return False
    os.chown("/dev/kvm", -1, kvm_gid)
    os.chmod("/dev/kvm", (st.st_mode & 0o7777) | 0o660)
    log.info("/dev/kvm set to root:kvm 0660 (what Debian's udev rule does)")
    return True


def ensure_libvirtd(netns: str = "okdbench", uri: str = SYSTEM_URI) -> None:
    """Idempotent: return at once when libvirtd answers on `uri`; else start virtlogd + libvirtd in `netns`."""
    fix_kvm_device_permissions()
    if reachable(uri):
        return
    if os.geteuid() != 0:
        raise UserError(f"libvirtd is not reachable on {uri} and starting it needs root; start libvirtd or run as root")
    for binary in ("ip", "libvirtd", "virtlogd"):
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
            raise UserError(f"libvirtd is not reachable on {uri} and '{binary}' is not installed; "
                            "apt-get install libvirt-daemon-system iproute2")
    # Several test sessions may race to start it; libvirtd's own pidfile lock would make the
    # loser exit, but serialising here gives each caller a clean answer.
    _LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if reachable(uri):
            return
        t0 = time.monotonic()
        _ensure_netns(netns)
        if not _virtlogd_alive():
            _run(["ip", "netns", "exec", netns, "virtlogd", "-d"], "start virtlogd")
        _run(["ip", "netns", "exec", netns, "libvirtd", "-d"], "start libvirtd")
        # A loaded machine makes libvirtd start slowly, not never: wait while it uses CPU.
        cpu, since = -1.0, time.monotonic()
        while time.monotonic() - since < _START_STALL_S:
            if reachable(uri):
                log.info("libvirtd started in network namespace %s (%.1f s)", netns, time.monotonic() - t0)
                return
            pid = libvirtd_pid()
            if pid is not None and (now := _cpu_s(pid)) > cpu:
                cpu, since = now, time.monotonic()
            time.sleep(0.2)
    raise UserError(f"started libvirtd in network namespace {netns} but {uri} did not answer and libvirtd made "
                    f"no progress for {_START_STALL_S:.0f} s; see /var/log/libvirt/ or run 'libvirtd -v' by hand")


def _cpu_s(pid: int) -> float:
    """CPU seconds a process has used (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- domain type


_PROBE_MARKERS = (b"No bootable device", b"Booting from")


def _probe_kvm_boots(timeout_s: float = 5.0) -> tuple[bool, str]:
    """Start QEMU with KVM and the host CPU (what our domain template asks for) and wait until its
    firmware reaches the boot-device stage.

    /dev/kvm existing is not enough: under nested or paravirtualised hosts it opens, creates VMs
    and even runs real-mode code, yet QEMU aborts setting host MSRs or a kernel hangs silently.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is absent or not accessible"
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return False, "qemu-system-x86_64 is not installed"
    with tempfile.TemporaryDirectory(prefix="okdbench-kvmprobe-") as tmp:
        debugcon = Path(tmp) / "debugcon"
        argv = [qemu, "-accel", "kvm", "-cpu", "host", "-nodefaults", "-display", "none", "-m", "32",
                "-no-reboot", "-serial", "none", "-boot", "strict=on",
                "-debugcon", f"file:{debugcon}", "-global", "isa-debugcon.iobase=0x402"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < timeout_s:
                if debugcon.exists() and any(m in debugcon.read_bytes() for m in _PROBE_MARKERS):
                    return True, "QEMU+KVM with the host CPU reached the firmware boot stage"
                if proc.poll() is not None:
                    err = (proc.stderr.read() or b"").decode(errors="replace").strip().splitlines()
                    return False, f"QEMU+KVM exited: {err[0] if err else proc.returncode}"
                time.sleep(0.05)
            return False, f"QEMU+KVM firmware did not reach the boot stage in {timeout_s:.0f} s"
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stderr.close()


@functools.lru_cache(maxsize=None)
def _local_kvm_verdict() -> tuple[bool, str]:
    return _probe_kvm_boots()


def domain_type(uri: str = SYSTEM_URI) -> str:
    """'kvm' when hardware virtualisation can really run a guest for `uri`, else 'qemu' (TCG emulation).

    Local URIs are probed on this machine (cached per process). Remote URIs cannot be probed from
    here; their libvirt capabilities are trusted.
    """
    parsed = urlparse(uri)
    if parsed.scheme.startswith("test"):
        return "test"
    if not parsed.hostname:
        ok, why = _local_kvm_verdict()
        log.debug("domain type for %s: %s (%s)", uri, "kvm" if ok else "qemu", why)
        return "kvm" if ok else "qemu"
    conn = open_connection(uri)
    try:
        return "kvm" if "<domain type='kvm'" in conn.getCapabilities() else "qemu"
    finally:
        conn.close()
