"""govmomi's vCenter simulator (vcsim) as a real TLS endpoint for tests.

The binary is built once from tests/vcsim/*.go (main.go, hostfail.go) with Debian's golang-go and
golang-github-vmware-govmomi-dev, cached under .cache/vcsim/<hash of the sources + go version>.
Each simulator gets a certificate from a CA made for the test session, so clients verify
TLS for real (ca_bundle) and a client without that CA fails. The login is fixed to a
canary password, which tests grep for in everything okdbench wrote.

Fixtures:
- vcsim:        session-scoped simulator (shared inventory; do not mutate it destructively)
- vcsim_fresh:  a new simulator with a pristine inventory for one test (~0.2 s to start)
- vcsim_ha:     the same with vSphere HA on and host reboot/shutdown (tests/vcsim/hostfail.go)
- vcsim_pki:    the session CA, the server key pair and an unrelated CA bundle
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import select
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support._bounded_run import STALL_S, tree_cpu_s

REPO = Path(__file__).resolve().parents[2]
MAIN_GO = REPO / "tests" / "vcsim" / "main.go"
GO_SOURCES = sorted(MAIN_GO.parent.glob("*.go"))
CACHE = REPO / ".cache"
GOPATH = "/usr/share/gocode"
USERNAME = "okdbench-test@vsphere.local"


# --------------------------------------------------------------------------- build


def _go_version(go: str) -> str:
    return subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout.strip()


def build_vcsim() -> Path:
    """Build (or reuse) the simulator binary. Raises RuntimeError with one line when it cannot."""
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("go is not installed (apt-get install golang-go golang-github-vmware-govmomi-dev)")
    if not (Path(GOPATH) / "src/github.com/vmware/govmomi/simulator").is_dir():
        raise RuntimeError(f"govmomi sources missing under {GOPATH} (apt-get install golang-github-vmware-govmomi-dev)")
    key = hashlib.sha256(b"".join(p.read_bytes() for p in GO_SOURCES) + _go_version(go).encode()).hexdigest()[:16]
    out_dir = CACHE / "vcsim" / key
    binary = out_dir / "vcsim"
    if binary.exists():
        return binary
    out_dir.mkdir(parents=True, exist_ok=True)
    # Two pytest processes may build at once; the lock makes the second one wait and reuse.
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():
            return binary
        env = {**os.environ, "GOPATH": GOPATH, "GO111MODULE": "off", "GOFLAGS": "",
               "GOCACHE": str(CACHE / "go-build")}
        tmp = out_dir / f"vcsim.tmp{os.getpid()}"
        proc = subprocess.run([go, "build", "-o", str(tmp), *map(str, GO_SOURCES)], cwd=MAIN_GO.parent, env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            first = (proc.stderr.strip().splitlines() or ["no output"])[0]
            raise RuntimeError(f"building tests/vcsim/*.go failed: {first}")
        tmp.rename(binary)
    return binary


# --------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class Pki:
    ca_bundle: Path  # the CA that signed the simulator's certificate
    cert: Path
    key: Path
    other_ca_bundle: Path  # a CA that did not: verification against it must fail


def make_pki(directory: Path) -> Pki:
    """The simulator's CA and server certificate (the same throw-away PKI code the fake API server uses)."""
    from tests.fakekube.certs import CertificateAuthority

    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority("okdbench vcsim test CA")
    other = CertificateAuthority("okdbench unrelated CA")
    (directory / "ca.pem").write_bytes(ca.cert_pem)
    (directory / "other-ca.pem").write_bytes(other.cert_pem)
    cert, key = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"]).write(directory, "server")
    return Pki(ca_bundle=directory / "ca.pem", cert=cert, key=key, other_ca_bundle=directory / "other-ca.pem")


# --------------------------------------------------------------------------- process


@dataclass
class VcSim:
    host: str
    port: int
    url: str
    username: str
    password: str
    ca_bundle: Path
    other_ca_bundle: Path
    log: Path
    process: subprocess.Popen = field(repr=False)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    def connect(self):
        """A pyVmomi ServiceInstance for assertions (verified TLS, the right login)."""
        from pyVim.connect import SmartConnect

        return SmartConnect(host=self.host, port=self.port, user=self.username, pwd=self.password,
                            sslContext=self.ssl_context())

    def env(self, prefix: str = "VSPHERE") -> dict[str, str]:
        """Credentials as the spec's default environment variables name them."""
        return {f"{prefix}_USERNAME": self.username, f"{prefix}_PASSWORD": self.password}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_vcsim(binary: Path, pki: Pki, workdir: Path, *, password: str | None = None, stall_s: float = STALL_S,
                extra_env: dict[str, str] | None = None) -> VcSim:
    """extra_env: hostfail.go's switches, e.g. {"VCSIM_HA": "1", "VCSIM_HOST_REBOOT_MS": "500"}."""
    workdir.mkdir(parents=True, exist_ok=True)
    password = password or f"canary-{secrets.token_hex(8)}"
    log = workdir / "vcsim.log"
    env = {**os.environ, **(extra_env or {}), "VCSIM_USERNAME": USERNAME, "VCSIM_PASSWORD": password}
    with open(log, "wb") as errf:
        proc = subprocess.Popen([str(binary), "-listen", "127.0.0.1:0", "-cert", str(pki.cert), "-key", str(pki.key)],
                                stdout=subprocess.PIPE, stderr=errf, env=env, cwd=workdir, text=True)
    assert proc.stdout is not None
    # The first stdout line is printed once the server listens. A hung binary must not hang the
    # suite, a slow (loaded) machine must not fail it: wait while vcsim uses CPU.
    progress = _Progress(proc.pid, stall_s)
    line = ""
    while progress.alive() and proc.poll() is None:
        if select.select([proc.stdout], [], [], 0.5)[0]:
            line = proc.stdout.readline()
            break
    if not line.startswith("VCSIM_URL="):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"vcsim did not start: {log.read_text().strip()[-300:] or 'no output'}")
    url = line.split("=", 1)[1].strip()
    hostport = url.split("//", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    sim = VcSim(host=host, port=int(port), url=url, username=USERNAME, password=password, ca_bundle=pki.ca_bundle,
                other_ca_bundle=pki.other_ca_bundle, log=log, process=proc)
    # Ready = a verified TLS handshake succeeds.
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=2) as raw:
                with sim.ssl_context().wrap_socket(raw, server_hostname=host):
                    break
        except OSError:
            if not progress.alive() or proc.poll() is not None:
                sim.stop()
                raise RuntimeError(f"vcsim at {url} not ready: no progress for {stall_s:.0f} s") from None
            time.sleep(0.05)
    return sim


class _Progress:
    """alive() while the process used CPU within the last stall_s seconds."""

    def __init__(self, pid: int, stall_s: float):
        self.pid, self.stall_s, self.cpu, self.since = pid, stall_s, -1.0, time.monotonic()

    def alive(self) -> bool:
        if (cpu := tree_cpu_s(self.pid)) > self.cpu:
            self.cpu, self.since = cpu, time.monotonic()
        return time.monotonic() - self.since < self.stall_s


def prepare_template(si, source: str = "DC0_C0_RP0_VM0", name: str = "okd-template"):
    """Turn one of the VPX model's VMs into a powered-off template VM named `name`."""
    from pyVmomi import vim

    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        vms = {vm.name: vm for vm in view.view}
    finally:
        view.Destroy()
    if name in vms:
        return vms[name]
    vm = vms[source]
    wait_task(vm.PowerOffVM_Task())
    wait_task(vm.Rename_Task(name))
    return vm


def wait_task(task, stall_s: float = STALL_S):
    from pyVmomi import vim

    # Bounded by lack of change in the task's state/progress, not by a total.
    seen, since = None, time.monotonic()
    while (info := task.info).state not in (vim.TaskInfo.State.success, vim.TaskInfo.State.error):
        if (info.state, info.progress) != seen:
            seen, since = (info.state, info.progress), time.monotonic()
        if time.monotonic() - since > stall_s:
            raise TimeoutError(f"task {info.descriptionId} still {info.state}, unchanged for {stall_s:.0f} s")
        time.sleep(0.02)
    if task.info.state == vim.TaskInfo.State.error:
        raise task.info.error
    return task.info.result


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def vcsim_binary() -> Path:
    try:
        return build_vcsim()
    except RuntimeError as exc:
        pytest.skip(f"vcsim unavailable: {exc}")


@pytest.fixture(scope="session")
def vcsim_pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("vcsim-pki"))


@pytest.fixture(scope="session")
def vcsim(vcsim_binary, vcsim_pki, tmp_path_factory):
    sim = start_vcsim(vcsim_binary, vcsim_pki, tmp_path_factory.mktemp("vcsim"))
    yield sim
    sim.stop()


@pytest.fixture
def vcsim_fresh(vcsim_binary, vcsim_pki, tmp_path):
    sim = start_vcsim(vcsim_binary, vcsim_pki, tmp_path / "vcsim")
    yield sim
    sim.stop()


@pytest.fixture
def vcsim_ha(vcsim_binary, vcsim_pki, tmp_path):
    """A fresh simulator with vSphere HA on in its cluster and host reboot/shutdown (tests/vcsim/hostfail.go).

    A rebooted host stays down 10 minutes: longer than any test, so no test races the host's return.
    """
    sim = start_vcsim(vcsim_binary, vcsim_pki, tmp_path / "vcsim",
                      extra_env={"VCSIM_HA": "1", "VCSIM_HOST_REBOOT_MS": str(10 * 60 * 1000)})
    yield sim
    sim.stop()


# --------------------------------------------------------------------------- specs for tests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vsphere_spec_data(sim: VcSim, name: str = "okd-sim", **vsphere_overrides) -> dict:
    """A small cluster spec (1 bootstrap, 1 master, 1 worker) aimed at the simulator's VPX inventory."""
    vs = {
        "host": sim.host, "port": sim.port, "datacenter": "DC0", "cluster": "DC0_C0", "datastore": "LocalDS_0",
        "network": "DC0_DVPG0", "template": "okd-template", "ca_bundle": str(sim.ca_bundle),
        "ignition_url": f"http://127.0.0.1:{free_port()}/bootstrap.ign",
    }
    vs.update(vsphere_overrides)
    return {
        "name": name, "base_domain": "sim.example", "platform": "vsphere",
        "network": {"machine_cidr": "198.18.20.0/24", "gateway": "198.18.20.1", "dns_servers": ["198.18.20.2"],
                    "static_ips": True},
        "nodes": [{"role": "bootstrap", "count": 1, "vcpu": 2, "memory": "4GiB", "disk": "20GiB"},
                  {"role": "master", "count": 1, "vcpu": 4, "memory": "8GiB", "disk": "30GiB"},
                  {"role": "worker", "count": 1, "vcpu": 3, "memory": "6GiB", "disk": "25GiB"}],
        "vsphere": {k: v for k, v in vs.items() if v is not None},
    }
