"""Build the okdbench test guest: Debian's kernel + a busybox initramfs that reports on ttyS0.

The guest stands in for Fedora CoreOS wherever a real VM must boot but no OKD can: the demo and
the KVM integration tests. It proves what the provisioning path delivers (fw_cfg ignition, NIC
name/MAC, DHCP reservation, DNS) and runs the in-guest probes (CPU, etcd-style fdatasync, sequential
write, a real single-member etcd under write load, guest-to-guest RTT); see
provision/kvm/testguest/init.sh.j2 for the serial-console protocol.

Inputs come from Debian packages fetched with `apt-get download` (nothing is installed on the host):
linux-image-amd64's current kernel, busybox-static and etcd-server (Debian's etcd is a Go binary
linked against glibc, so the host's libc.so.6 and dynamic loader go in beside it). The C probe is
compiled with the host's gcc.
The result is cached under <cache_dir>/testguest/<key>/, key = hash of every input, so a second call
costs a few `apt-cache` look-ups. Concurrent builders (parallel test sessions) serialise on a lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import stat
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from plumbing.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from provision.spec import ClusterSpec, Machine

log = logging.getLogger("okdbench.testguest")

SOURCES = Path(__file__).with_name("testguest")
KERNEL_META_PACKAGE = "linux-image-amd64"
BUSYBOX_PACKAGE = "busybox-static"
ETCD_PACKAGE = "etcd-server"
# etcd's shared-library needs (checked with ldd on Debian 12's etcd 3.4): glibc and its loader.
GLIBC_FILES = (Path("/lib/x86_64-linux-gnu/libc.so.6"), Path("/lib64/ld-linux-x86-64.so.2"))
# What the guest needs; their dependencies are resolved from each module's modinfo.
# ext4 (with the crc32c it insists on) mounts the ext2 filesystem etcd keeps its data on.
# button + evdev: the ACPI power button reaches busybox acpid (graceful reboot/shutdown through libvirt)
WANTED_MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "net_failover", "failover", "qemu_fw_cfg", "crc32c_generic", "ext4",
                  "button", "evdev")
# Bump when the build procedure changes in a way the inputs' hashes do not show.
BUILD_FORMAT = "4"

# Recommended kernel arguments; the domain template appends the okdbench.* ones.
# No panic=-1: with on_reboot=restart a guest that panics would boot-loop; a hung one costs nothing.
BASE_CMDLINE = "console=ttyS0 quiet"


class TestGuestBuildError(UserError):
    """The test guest cannot be built here (no apt, no gcc, package missing). One line."""


@dataclass(frozen=True)
class TestGuest:
    kernel: Path
    initrd: Path
    kernel_release: str = ""
    key: str = ""

    __test__ = False  # not a pytest test class, despite the name


# ------------------------------------------------------------------ pure helpers


def modinfo(ko: bytes) -> dict[str, str]:
    """The .modinfo section of an ELF64 kernel module, as key -> value (last one wins)."""
    if ko[:4] != b"\x7fELF" or ko[4] != 2:
        raise ValueError("not an ELF64 object")
    endian = "<" if ko[5] == 1 else ">"
    e_shoff = struct.unpack_from(endian + "Q", ko, 0x28)[0]
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from(endian + "HHH", ko, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        base = e_shoff + i * e_shentsize
        name, _type, _flags, _addr, offset, size = struct.unpack_from(endian + "IIQQQQ", ko, base)
        return name, offset, size

    _, str_off, _ = section(e_shstrndx)
    for i in range(e_shnum):
        name_off, offset, size = section(i)
        end = ko.index(b"\0", str_off + name_off)
        if ko[str_off + name_off : end] == b".modinfo":
            info: dict[str, str] = {}
            for entry in ko[offset : offset + size].split(b"\0"):
                if b"=" in entry:
                    k, v = entry.decode(errors="replace").split("=", 1)
                    info[k] = v
            return info
    return {}


def module_load_order(wanted: tuple[str, ...] | list[str], deps: dict[str, list[str]]) -> list[str]:
    """Dependencies first (post-order DFS), each module once; `deps` maps name -> its depends=."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name in stack:
            raise ValueError(f"module dependency cycle: {' -> '.join(stack + (name,))}")
        if name not in deps:
            raise KeyError(name)
        for dep in deps[name]:
            visit(dep, stack + (name,))
        seen.add(name)
        order.append(name)

    for name in wanted:
        visit(name, ())
    return order


def kernel_cmdline(spec: "ClusterSpec", machine: "Machine", extra: str | None = None) -> str:
    """The test guest's kernel command line for one machine of a spec.

    okdbench.domain lets the guest resolve api.<cluster domain> without relying on the DHCP
    domain option; okdbench.peers lists every guest IP so each pings the next one (a ring).
    spec.kvm.kernel_args, then `extra` (e.g. "okdbench.probes=cpu,fsync okdbench.repeat=3"), are
    appended verbatim: the demo asks for its probes there.
    """
    peers = ",".join(str(m.ip) for m in spec.machines())
    parts = [BASE_CMDLINE, f"okdbench.domain={spec.cluster_domain}", f"okdbench.name={machine.name}",
             f"okdbench.peers={peers}"]
    kvm_args = spec.kvm.kernel_args if spec.kvm is not None else None
    for more in (kvm_args, extra):
        if more and more.strip():
            parts.append(more.strip())
    return " ".join(parts)


# ------------------------------------------------------------------ build steps


def _run(cmd: list[str], cwd: Path | None = None, what: str = "") -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, check=False, capture_output=True, text=True)
    except FileNotFoundError:
        raise TestGuestBuildError(f"test guest: {cmd[0]} not found; install it (see .ci/apt-packages.txt)") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise TestGuestBuildError(f"test guest: {what or cmd[0]} failed: {last}")
    return proc.stdout


def _candidate(package: str) -> tuple[str, str]:
    """(real package, candidate version) for a package, following a kernel meta-package's Depends."""
    real = package
    if package == KERNEL_META_PACKAGE:
        out = _run(["apt-cache", "depends", package], what=f"apt-cache depends {package}")
        deps = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.strip().startswith("Depends:")]
        images = [d for d in deps if d.startswith("linux-image-")]
        if not images:
            raise TestGuestBuildError(f"test guest: {package} names no linux-image-* package; run apt-get update")
        real = images[0]
    out = _run(["apt-cache", "policy", real], what=f"apt-cache policy {real}")
    for line in out.splitlines():
        if line.strip().startswith("Candidate:"):
            version = line.split(":", 1)[1].strip()
            if version and version != "(none)":
                return real, version
    raise TestGuestBuildError(f"test guest: no installable version of {real}; run apt-get update")


def _download(package: str, version: str, debs: Path) -> Path:
    """apt-get download into the cache (never installs); reuses an earlier download."""
    debs.mkdir(parents=True, exist_ok=True)
    plain = version.split(":", 1)[-1]
    found = sorted(debs.glob(f"{package}_*{plain}_*.deb"))
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(dir=debs) as tmp:
        # _apt cannot write into root-only dirs; the warning it prints is harmless.
        os.chmod(tmp, 0o755)
        _run(["apt-get", "download", "-q", f"{package}={version}"], cwd=Path(tmp), what=f"apt-get download {package}")
        got = sorted(Path(tmp).glob("*.deb"))
        if not got:
            raise TestGuestBuildError(f"test guest: apt-get download {package} produced no .deb")
        dest = debs / got[0].name
        os.replace(got[0], dest)
    return dest


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _source_files() -> list[Path]:
    return sorted(p for p in SOURCES.iterdir() if p.is_file())


def cache_key(kernel_deb: Path, busybox_deb: Path, etcd_deb: Path) -> str:
    h = hashlib.sha256(f"format={BUILD_FORMAT};modules={','.join(WANTED_MODULES)}".encode())
    # .deb names carry package+version; their content is immutable per version in the archive.
    for deb in (kernel_deb, busybox_deb, etcd_deb):
        h.update(deb.name.encode())
    for lib in GLIBC_FILES:
        h.update(_file_hash(lib.resolve()).encode() if lib.exists() else b"missing")
    for src in _source_files():
        h.update(src.name.encode() + b"\0" + src.read_bytes())
    return h.hexdigest()[:16]


def _render_init(kernel_release: str, modules: list[str]) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(SOURCES), undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        trim_blocks=True, lstrip_blocks=True, autoescape=False,
    )
    return env.get_template("init.sh.j2").render(kernel_release=kernel_release, modules=modules)


def _write_cpio(root: Path, out: Path) -> None:
    """newc cpio of `root`, sorted, with fixed mtimes: the same inputs give the same bytes."""
    for p in root.rglob("*"):
        os.utime(p, (0, 0), follow_symlinks=False)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    with open(out, "wb") as fh:
        proc = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "--owner=0:0", "--reproducible"],
                              cwd=root, input=("\n".join(names) + "\n").encode(), stdout=fh, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise TestGuestBuildError(f"test guest: cpio failed: {proc.stderr.decode(errors='replace').strip()}")


def _build(kernel_deb: Path, busybox_deb: Path, etcd_deb: Path, dest: Path) -> tuple[str]:
    with tempfile.TemporaryDirectory(prefix="okdbench-testguest-") as tmp_s:
        tmp = Path(tmp_s)
        kx, bx, ex, root = tmp / "kernel", tmp / "busybox", tmp / "etcd", tmp / "root"
        _run(["dpkg-deb", "-x", str(kernel_deb), str(kx)], what="dpkg-deb -x (kernel)")
        _run(["dpkg-deb", "-x", str(busybox_deb), str(bx)], what="dpkg-deb -x (busybox)")
        _run(["dpkg-deb", "-x", str(etcd_deb), str(ex)], what="dpkg-deb -x (etcd)")
        vmlinuz = sorted((kx / "boot").glob("vmlinuz-*"))
        if not vmlinuz:
            raise TestGuestBuildError(f"test guest: {kernel_deb.name} holds no /boot/vmlinuz-*")
        release = vmlinuz[0].name.removeprefix("vmlinuz-")
        moddir = kx / "lib" / "modules" / release

        # The package ships no modules.dep (depmod runs at install time): read each module's modinfo.
        paths: dict[str, Path] = {}
        for ko in moddir.rglob("*.ko"):
            paths[ko.name[:-3].replace("-", "_")] = ko
        deps: dict[str, list[str]] = {}

        def load(name: str) -> None:
            if name in deps or name not in paths:
                return
            info = modinfo(paths[name].read_bytes())
            deps[name] = [d.replace("-", "_") for d in info.get("depends", "").split(",") if d]
            for d in deps[name]:
                load(d)

        missing = [m for m in WANTED_MODULES if m not in paths]
        if missing:
            raise TestGuestBuildError(f"test guest: kernel {release} lacks modules {', '.join(missing)}")
        for m in WANTED_MODULES:
            load(m)
        order = module_load_order(WANTED_MODULES, deps)
        rel_paths = [str(paths[m].relative_to(moddir)) for m in order]

        for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "run", "etc", "www", "var/lib", "lib/modules",
                  "lib64", "lib/x86_64-linux-gnu"):
            (root / d).mkdir(parents=True, exist_ok=True)
        busybox = bx / "bin" / "busybox"
        if not busybox.exists():
            raise TestGuestBuildError(f"test guest: {busybox_deb.name} holds no /bin/busybox")
        shutil.copy2(busybox, root / "bin" / "busybox")
        os.symlink("busybox", root / "bin" / "sh")
        for rel in rel_paths:
            target = root / "lib" / "modules" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(moddir / rel, target)
        _run(["gcc", "-static", "-O2", "-s", "-Wall", "-o", str(root / "bin" / "okprobe"), str(SOURCES / "okprobe.c")],
             what="gcc -static okprobe.c (needs libc6-dev)")
        etcd = ex / "usr" / "bin" / "etcd"
        if not etcd.exists():
            raise TestGuestBuildError(f"test guest: {etcd_deb.name} holds no /usr/bin/etcd")
        shutil.copy2(etcd, root / "bin" / "etcd")
        for lib in GLIBC_FILES:
            if not lib.exists():
                raise TestGuestBuildError(f"test guest: {lib} not found (etcd needs glibc); install libc6")
            shutil.copy2(lib.resolve(), root / str(lib).lstrip("/"))
        init = root / "init"
        init.write_text(_render_init(release, rel_paths))
        init.chmod(0o755)
        # The kernel opens /dev/console before /init runs (devtmpfs is not mounted yet).
        try:
            os.mknod(root / "dev" / "console", 0o600 | stat.S_IFCHR, os.makedev(5, 1))
        except PermissionError:
            log.debug("test guest: not root, no /dev/console node (early init messages are lost)")
        (root / "etc" / "okdbench-testguest").write_text(f"kernel={release}\nmodules={' '.join(order)}\n")

        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=dest.parent))
        try:
            shutil.copy2(vmlinuz[0], staging / "vmlinuz")
            _write_cpio(root, staging / "initrd.img")
            (staging / "kernel-release").write_text(release + "\n")
            for p in staging.iterdir():
                p.chmod(0o644)
            staging.chmod(0o755)
            os.replace(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return (release,)


def build_test_guest(cache_dir: Path) -> TestGuest:
    """Kernel + initramfs of the test guest, built once per input set and cached under cache_dir."""
    cache_dir = Path(cache_dir).resolve()
    root = cache_dir / "testguest"
    root.mkdir(parents=True, exist_ok=True)
    # libvirt's qemu user must reach the files: every directory on the way needs o+x.
    for d in (cache_dir, root):
        d.chmod(d.stat().st_mode | 0o755)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        t0 = time.monotonic()
        kpkg, kver = _candidate(KERNEL_META_PACKAGE)
        bpkg, bver = _candidate(BUSYBOX_PACKAGE)
        epkg, ever = _candidate(ETCD_PACKAGE)
        kernel_deb = _download(kpkg, kver, root / "debs")
        busybox_deb = _download(bpkg, bver, root / "debs")
        etcd_deb = _download(epkg, ever, root / "debs")
        key = cache_key(kernel_deb, busybox_deb, etcd_deb)
        dest = root / key
        if not (dest / "initrd.img").exists():
            log.info("test guest: building %s from %s + %s + %s", key, kernel_deb.name, busybox_deb.name, etcd_deb.name)
            _build(kernel_deb, busybox_deb, etcd_deb, dest)
            log.info("test guest: built in %.1fs -> %s", time.monotonic() - t0, dest)
        # A stable name for specs written by hand (examples/demo-*.yaml): <cache>/testguest/current/.
        current = root / "current"
        if not current.is_symlink() or os.readlink(current) != key:
            tmp_link = root / f".current-{os.getpid()}"
            tmp_link.unlink(missing_ok=True)
            os.symlink(key, tmp_link)
            os.replace(tmp_link, current)
        release = (dest / "kernel-release").read_text().strip()
        return TestGuest(kernel=dest / "vmlinuz", initrd=dest / "initrd.img", kernel_release=release, key=key)
