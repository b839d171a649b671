"""Fixture `libvirt_pair`: two private libvirtd instances on this machine, for live migration.

Each instance runs in its own network namespace and its own mount namespace, where libvirt's
fixed directories (/etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt,
/var/log/libvirt) are bind-mounted from a private folder: two monolithic libvirtds then share
nothing (state, domain definitions, lock files, capability caches). Their unix sockets live in
that folder (unix_sock_dir), so the tests reach them from outside; a veth pair on
198.19.250.0/30 joins the namespaces, and each libvirtd listens on qemu+tcp (no auth: only the
other namespace can reach it) for the peer-to-peer migration and QEMU's memory stream.
qemu.conf keeps the QEMU processes simple: no cgroups (two drivers would name their machine
scopes alike), no security driver, no virtlogd, QEMU as root. Nothing touches the shared
libvirtd in namespace `okdbench`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "resilience16"
SUBNET = "198.19.250"  # /30 inside the two namespaces only


@dataclass
class LibvirtHost:
    name: str  # also the network namespace
    address: str
    dir: Path
    process: subprocess.Popen

    @property
    def uri(self) -> str:
        """From this machine (the unix socket in the private folder)."""
        return f"qemu+unix:///system?socket={self.dir}/sock/libvirt-sock"

    @property
    def peer_uri(self) -> str:
        """From the other libvirtd (across the veth pair): the destination of a p2p migration."""
        return f"qemu+tcp://{self.address}/system"


def _run(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {(proc.stderr or proc.stdout).strip()[-200:]}")


def _conf(host_dir: Path, address: str) -> None:
    etc = host_dir / "etc"
    etc.mkdir(parents=True)
    (etc / "libvirtd.conf").write_text(
        f'unix_sock_dir = "{host_dir}/sock"\nunix_sock_rw_perms = "0700"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\n'
        f'listen_tls = 0\nlisten_tcp = 1\nlisten_addr = "{address}"\nauth_tcp = "none"\n')
    (etc / "qemu.conf").write_text(
        'stdio_handler = "file"\ncgroup_controllers = [ ]\nsecurity_driver = "none"\nuser = "root"\ngroup = "root"\n'
        f'dynamic_ownership = 0\nmigration_address = "{address}"\nmigration_host = "{address}"\n')


def _start(name: str, address: str, host_dir: Path) -> LibvirtHost:
    for sub in ("run", "lib", "cache", "log", "sock"):
        (host_dir / sub).mkdir(parents=True)
    _conf(host_dir, address)
    binds = {"etc": "/etc/libvirt", "run": "/run/libvirt", "lib": "/var/lib/libvirt", "cache": "/var/cache/libvirt",
             "log": "/var/log/libvirt"}
    script = "set -e; " + "; ".join(f"mkdir -p {t}; mount --bind {host_dir / s} {t}" for s, t in binds.items())
    script += f"; exec libvirtd --listen -p {host_dir}/libvirtd.pid -f {host_dir}/etc/libvirtd.conf"
    log = open(host_dir / "libvirtd.stderr", "wb")
    proc = subprocess.Popen(["ip", "netns", "exec", name, "unshare", "--mount", "--propagation", "private",
                             "sh", "-c", script], stdout=log, stderr=log)
    return LibvirtHost(name=name, address=address, dir=host_dir, process=proc)


def _wait_ready(host: LibvirtHost, stall_s: float = 30.0) -> None:
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    start = time.monotonic()
    while True:
        if host.process.poll() is not None:
            raise RuntimeError(f"libvirtd {host.name} exited: {(host.dir / 'libvirtd.stderr').read_text()[-300:]}")
        try:
            libvirt.open(host.uri).close()
            return
        except libvirt.libvirtError:
            if time.monotonic() - start > stall_s:
                raise RuntimeError(f"libvirtd {host.name} not answering on {host.uri} after {stall_s:.0f} s") from None
            time.sleep(0.1)


def _stop(host: LibvirtHost) -> None:
    import libvirt

    try:
        conn = libvirt.open(host.uri)
        for dom in conn.listAllDomains(0):  # only our own private instance's domains
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        conn.close()
    except libvirt.libvirtError:
        pass
    if host.process.poll() is None:
        host.process.send_signal(signal.SIGTERM)
        try:
            host.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            host.process.kill()
            host.process.wait()


@pytest.fixture(scope="session")
def libvirt_pair():
    """(host A, host B): two libvirtds joined by a veth pair; a guest defined on A migrates to B.peer_uri."""
    for tool in ("libvirtd", "unshare", "ip"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    base = ROOT / ".cache" / f"{PREFIX}-pair-{os.getpid() % 100000}"
    shutil.rmtree(base, ignore_errors=True)
    names = (f"{PREFIX}-a", f"{PREFIX}-b")
    hosts: list[LibvirtHost] = []
    try:
        for n in names:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)  # a crashed earlier session's
            _run("ip", "netns", "add", n)
            _run("ip", "netns", "exec", n, "ip", "link", "set", "lo", "up")
        _run("ip", "link", "add", f"{PREFIX}a", "netns", names[0], "type", "veth", "peer", "name", f"{PREFIX}b",
             "netns", names[1])
        for i, n in enumerate(names):
            dev = f"{PREFIX}{'ab'[i]}"
            _run("ip", "netns", "exec", n, "ip", "addr", "add", f"{SUBNET}.{i + 1}/30", "dev", dev)
            _run("ip", "netns", "exec", n, "ip", "link", "set", dev, "up")
        for i, n in enumerate(names):
            hosts.append(_start(n, f"{SUBNET}.{i + 1}", base / n))
        for h in hosts:
            _wait_ready(h)
    except RuntimeError as exc:
        for h in hosts:
            _stop(h)
        for n in names:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        pytest.skip(f"two libvirtd instances cannot run here: {exc}")
    yield hosts[0], hosts[1]
    for h in hosts:
        _stop(h)
    for n in names:
        subprocess.run(["ip", "netns", "del", n], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)
