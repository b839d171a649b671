"""`okdbench demo`: the whole pipeline on one Linux machine, with real VMs and real numbers.

prepare (libvirtd in netns `okdbench`, the test guest, a storage pool, the two specs)
  -> N runs per platform, alternating kvm-default / kvm-tuned, each one `pytest suites/` session
     (the plugin provisions the micro topology from --spec, the suites measure, the plugin destroys)
  -> `okdbench report` kvm-tuned vs kvm-default.

Each run is a separate pytest process, exactly what a user or the nightly runner would start, so
the demo exercises the real entry points rather than a shortcut.

Ctrl-C or SIGTERM stops the demo cleanly: the running pytest session gets SIGTERM and tears down
what it provisioned as at a normal end (its run reads `aborted`); the demo waits for it as long as
it makes progress, then removes anything still there itself. A second Ctrl-C skips the teardown
and lists what was left in libvirt.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import yaml

from okdbench import hostload
from plumbing.errors import UserError

log = logging.getLogger("okdbench.demo")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CACHE = ROOT / ".cache"
LABELS = ("kvm-default", "kvm-tuned")
BASELINE, CANDIDATE = LABELS
PROBES = "cpu,fsync,seqwrite,etcd,rtt"
# The demo's one pre-registered question (report --primary): etcd's median WAL fsync, from etcd's
# own histogram. It is what OKD's control plane feels on a disk, and under emulation it is the
# guest metric that most often decides (6 of 6 idle demos at 5 runs a side): README "Quick start"
# has the figures.
PRIMARY = "guest.etcd.wal_fsync.p50"
# After SIGTERM, a pytest session that printed nothing for this long is killed (its teardown is stuck).
TEARDOWN_SILENCE_S = 120.0
POOL = "okdbench-demo"
POOL_DIR = Path("/var/lib/libvirt/images") / POOL
NETNS = "okdbench"


@dataclass
class RunOutcome:
    label: str
    index: int
    exit_code: int
    seconds: float
    log: Path
    run_dir: Path | None = None

    @property
    def status(self) -> str:
        """run.json's final status: complete, incomplete, aborted (or 'missing')."""
        if self.run_dir is None or not (self.run_dir / "run.json").exists():
            return "missing"
        return json.loads((self.run_dir / "run.json").read_text()).get("status", "missing")


class DemoInterrupted(Exception):
    """Ctrl-C/SIGTERM stopped the demo; str() is one line saying what was cleaned up or left."""

    def __init__(self, message: str, runs: list[RunOutcome], left: list[str]):
        super().__init__(message)
        self.runs, self.left = runs, left


@dataclass
class DemoResult:
    out: Path
    results_dir: Path
    report: Path | None
    runs: list[RunOutcome] = field(default_factory=list)
    failures: list = field(default_factory=list)  # CriterionFailure
    seconds: float = 0.0
    hypervisor: dict = field(default_factory=dict)


class Progress:
    """One line per phase with the time since the demo started: what a newcomer watches."""

    def __init__(self, emit: Callable[[str], None] | None = None):
        self.t0 = time.monotonic()
        self.emit = emit or (lambda line: print(line, file=sys.stderr, flush=True))

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def __call__(self, phase: str, detail: str = "") -> None:
        m, s = divmod(int(self.elapsed()), 60)
        self.emit(f"[{m:02d}:{s:02d}] {phase}{': ' + detail if detail else ''}")


# ------------------------------------------------------------------ pure planning


def run_order(runs: int, labels: tuple[str, ...] = LABELS) -> list[tuple[str, int]]:
    """A B, B A, A B, ...: alternating who goes first spreads slow drift of the host over both."""
    order: list[tuple[str, int]] = []
    for i in range(runs):
        pair = labels if i % 2 == 0 else tuple(reversed(labels))
        order += [(label, i) for label in pair]
    return order


@dataclass(frozen=True)
class Placement:
    """Where a demo lives on a shared libvirtd: a prefix for its names, an offset for its subnets.

    Two demos (or a demo and its tests) on one libvirtd must not share cluster names (each one's
    clean-up removes the other's VMs) nor subnets (libvirt refuses a second network on a subnet).
    """

    prefix: str = ""
    net_offset: int = 0

    def apply(self, spec: dict) -> None:
        import ipaddress

        spec["name"] = f"{self.prefix}{spec['name']}"
        if self.net_offset:
            net = ipaddress.ip_network(spec["network"]["machine_cidr"])
            moved = ipaddress.ip_network((int(net.network_address) + (self.net_offset << 8), net.prefixlen))
            if not moved.subnet_of(ipaddress.ip_network("198.18.0.0/15")):
                raise UserError(f"--net-offset: {self.net_offset} moves {net} to {moved}, outside 198.18.0.0/15; use a smaller offset")
            spec["network"]["machine_cidr"] = str(moved)


def demo_spec(template: dict, *, kernel: Path, initrd: Path, repeat: int, pool: str = POOL,
              placement: Placement = Placement()) -> dict:
    """The example spec with the built guest, its probes and the repetition count filled in."""
    spec = json.loads(json.dumps(template))  # deep copy of plain YAML data
    placement.apply(spec)
    kvm = spec.setdefault("kvm", {})
    kvm["kernel"] = str(kernel)
    kvm["initrd"] = str(initrd)
    kvm["storage_pool"] = pool
    kept = [w for w in str(kvm.get("kernel_args") or "").split()
            if not w.startswith(("okdbench.probes=", "okdbench.repeat=", "okdbench.gapwatch="))]
    # gapwatch: after their probes the guests keep a heartbeat for the resilience step (freeze 5 s, reset).
    kvm["kernel_args"] = " ".join(kept + [f"okdbench.probes={PROBES}", f"okdbench.repeat={repeat}", "okdbench.gapwatch=600"])
    spec["resilience"] = {"disruptions": ["freeze", "reset"], "freeze_s": 5}
    return spec


def pytest_argv(label: str, spec: Path, repeat: int, results_dir: Path, keep: bool) -> list[str]:
    argv = [sys.executable, "-m", "pytest", str(ROOT / "suites"), "--platform=kvm", f"--label={label}",
            f"--spec={spec}", f"--repeat={repeat}", f"--results-dir={results_dir}", "-p", "no:cacheprovider",
            "-o", "log_cli=true", "--log-cli-level=INFO", "-rs"]
    if keep:
        argv.append("--keep-cluster")
    return argv


# ------------------------------------------------------------------ environment


def ensure_pool(uri: str, name: str = POOL, path: Path = POOL_DIR) -> bool:
    """A directory storage pool for the demo's volumes; True when it had to be created.

    Left defined afterwards (empty): it is cheap, and removing a pool a user may have reused is not ours to do.
    """
    from provision.kvm.libvirtd import _quiet_libvirt, open_connection

    libvirt = _quiet_libvirt()
    conn = open_connection(uri)
    try:
        try:
            pool = conn.storagePoolLookupByName(name)
            created = False
        except libvirt.libvirtError:
            path.mkdir(parents=True, exist_ok=True)
            xml = (f"<pool type='dir'><name>{name}</name><target><path>{path}</path>"
                   "<permissions><mode>0755</mode></permissions></target></pool>")
            pool = conn.storagePoolDefineXML(xml, 0)
            created = True
        if not pool.isActive():
            pool.create(0)
        return created
    finally:
        conn.close()


def prepare(out: Path, repeat: int, progress: Progress, uri: str = "qemu:///system",
            placement: Placement = Placement()) -> dict[str, Path]:
    """libvirtd, the test guest, the pool, and the two specs written under out/specs/."""
    from provision.kvm import libvirtd
    from provision.lifecycle import destroy_cluster
    from provision.spec import load_spec
    from provision.kvm.testguest import build_test_guest

    progress("prepare", "libvirtd")
    libvirtd.ensure_libvirtd(NETNS, uri)
    where = (f"network namespace {NETNS}" if libvirtd.libvirtd_in_netns(NETNS)
             else "the host's network namespace (it was already running)")
    progress("prepare", f"libvirtd answers on {uri}, VM networks live in {where}")
    dom_type = libvirtd.domain_type(uri)
    progress("prepare", "KVM can run guests: domain type kvm" if dom_type == "kvm"
             else "KVM cannot run a guest here: software emulation (domain type qemu); numbers are TCG's")
    progress("prepare", "test guest (Debian kernel + busybox initramfs, cached)")
    guest = build_test_guest(CACHE)
    progress("prepare", f"test guest {guest.key}: kernel {guest.kernel_release}")
    if ensure_pool(uri):
        progress("prepare", f"created storage pool {POOL} at {POOL_DIR}")
    specs_dir = out / "specs"
    specs_dir.mkdir(parents=True, exist_ok=True)
    specs: dict[str, Path] = {}
    for label in LABELS:
        template = yaml.safe_load((EXAMPLES / f"demo-{label}.yaml").read_text())
        data = demo_spec(template, kernel=guest.kernel, initrd=guest.initrd, repeat=repeat, placement=placement)
        path = specs_dir / f"demo-{label}.yaml"
        path.write_text(f"# written by okdbench demo from examples/demo-{label}.yaml\n"
                        + yaml.safe_dump(data, sort_keys=False))
        specs[label] = path
        # Whatever an interrupted or --keep demo left behind (only this cluster's own resources).
        removed = destroy_cluster(load_spec(path))
        if removed:
            progress("prepare", f"removed leftovers of {label}: {', '.join(removed)}")
    return specs


# ------------------------------------------------------------------ runs

# Markers in the plugin's and suites' log lines, and the phase each one starts.
_PHASES = (
    ("provisioning ", "provisioning VMs"),
    ("domain(s) running after", "VMs booting, probes running"),
    ("guests finished", "guests reporting"),
    ("destroying ", "destroying"),
)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # A demo killed outright (SIGKILL) still gets its session torn down: the kernel sends it SIGTERM.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()  # the demo forwards signals itself, once, in order


class _Session:
    """One pytest child whose output lines arrive through a queue, so waiting on it stays interruptible."""

    def __init__(self, argv: list[str], env: dict, log_fh):
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self.lines: queue.Queue = queue.Queue()
        self.log_fh = log_fh
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_line(self, timeout: float | None) -> str | None:
        """The next line (also written to the log); None at the end of output; queue.Empty on silence."""
        line = self.lines.get(timeout=timeout)
        if line is not None:
            self.log_fh.write(line)
            self.log_fh.flush()
        return line

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def drain(self, silence_s: float | None, on_line: Callable[[str], None] = lambda line: None) -> bool:
        """Read until the output ends; False when nothing came for `silence_s` (bounded by progress)."""
        while True:
            try:
                line = self.next_line(timeout=silence_s)
            except queue.Empty:
                return False
            if line is None:
                self.proc.wait()
                return True
            on_line(line)


def run_one(label: str, index: int, spec: Path, repeat: int, results_dir: Path, logs_dir: Path,
            progress: Progress, position: str, keep: bool) -> RunOutcome:
    log_path = logs_dir / f"{label}-{index}.log"
    argv = pytest_argv(label, spec, repeat, results_dir, keep)
    before = {p.name for p in results_dir.iterdir()} if results_dir.exists() else set()
    t0 = time.monotonic()
    progress(f"run {position} {label}", "starting pytest suites/")
    env = dict(os.environ, PYTHONUNBUFFERED="1", OKDBENCH_WORKDIR=str(results_dir.parent / "work"))
    seen: set[str] = set()

    def phases(line: str) -> None:
        for marker, phase in _PHASES:
            if marker in line and phase not in seen:
                seen.add(phase)
                progress(f"run {position} {label}", phase)

    def outcome(code: int) -> RunOutcome:
        new = sorted(p for p in results_dir.iterdir() if p.name not in before and (p / "run.json").exists()) \
            if results_dir.exists() else []
        return RunOutcome(label=label, index=index, exit_code=code, seconds=time.monotonic() - t0, log=log_path,
                          run_dir=new[-1] if new else None)

    with open(log_path, "w") as fh:
        fh.write("$ " + " ".join(argv) + "\n")
        fh.flush()
        session = _Session(argv, env, fh)
        try:
            session.drain(None, phases)
        except KeyboardInterrupt:
            left = _stop_session(session, spec, progress, f"run {position} {label}", phases)
            result = outcome(session.proc.returncode if session.proc.returncode is not None else -1)
            status = result.status
            where = f"run {position} {label}"
            msg = (f"interrupted during {where}; its run reads {status}"
                   + (f"; left in libvirt: {', '.join(left)} (remove with `okdbench destroy --spec {spec}`)"
                      if left else "; nothing of it is left in libvirt"))
            raise DemoInterrupted(msg, [result], left) from None
    result = outcome(session.proc.returncode)
    summary = _summarise(result.run_dir)
    progress(f"run {position} {label}", f"done in {result.seconds:.0f} s ({summary}; log {log_path.name})")
    return result


def _stop_session(session: _Session, spec: Path, progress: Progress, where: str, on_line) -> list[str]:
    """SIGTERM the session, let it tear down while it shows progress, then make sure; returns what is left."""
    from provision.lifecycle import destroy_cluster
    from provision.spec import load_spec

    progress(where, "interrupted: the session tears down what it provisioned (Ctrl-C again to skip)")
    session.signal(signal.SIGTERM)
    try:
        if not session.drain(TEARDOWN_SILENCE_S, on_line):
            progress(where, f"no output for {TEARDOWN_SILENCE_S:.0f} s while tearing down: killing it")
            session.signal(signal.SIGKILL)
            session.proc.wait()
        cluster = load_spec(spec)
        removed = destroy_cluster(cluster)  # a no-op after a normal teardown
        if removed:
            progress(where, f"removed what the session left: {', '.join(removed)}")
    except KeyboardInterrupt:
        # Second interrupt: the session's own second interrupt skips its teardown; say what is left.
        session.signal(signal.SIGTERM)
        try:
            session.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            session.signal(signal.SIGKILL)
            session.proc.wait()
        progress(where, "interrupted again: teardown skipped")
    return leftovers(load_spec(spec))


def leftovers(spec) -> list[str]:
    """Domains, the network and volumes of this demo cluster still in libvirt (by name)."""
    from provision.kvm.libvirtd import _quiet_libvirt, open_connection
    from provision.kvm.render import net_plan

    libvirt = _quiet_libvirt()
    try:
        conn = open_connection(spec.kvm.uri)
    except Exception as exc:  # noqa: BLE001 - whatever libvirt says, the user gets one line
        return [f"(libvirt not reachable to check: {str(exc).splitlines()[0][:100]})"]
    try:
        left = [f"domain {d.name()}" for d in conn.listAllDomains(0) if d.name().startswith(spec.name + "-")]
        left += [f"network {n.name()}" for n in conn.listAllNetworks(0) if n.name() == net_plan(spec).name]
        try:
            pool = conn.storagePoolLookupByName(spec.kvm.storage_pool)
            pool.refresh(0)
            left += [f"volume {spec.kvm.storage_pool}/{v}" for v in pool.listVolumes() if v.startswith(spec.name + "-")]
        except libvirt.libvirtError:
            pass
        return left
    finally:
        conn.close()


def _summarise(run_dir: Path | None) -> str:
    if run_dir is None:
        return "no run folder"
    counts: dict[str, int] = {}
    crit = run_dir / "criteria.jsonl"
    if crit.exists():
        for line in crit.read_text().splitlines():
            if line.strip():
                status = json.loads(line).get("status", "?")
                counts[status] = counts.get(status, 0) + 1
    samples = run_dir / "samples.jsonl"
    n = sum(1 for line in samples.read_text().splitlines() if line.strip()) if samples.exists() else 0
    status = json.loads((run_dir / "run.json").read_text()).get("status", "?")
    return f"run {status}, {n} samples, criteria " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def make_report(results_dir: Path, out_html: Path) -> Path:
    from okdbench import cli

    code = cli.main(["report", str(results_dir), "--baseline", BASELINE, "--candidate", CANDIDATE, "--primary", PRIMARY,
                     "--out", str(out_html), "--title", "okdbench demo: kvm-tuned vs kvm-default (micro topology)"])
    if code != 0 or not out_html.exists():
        raise UserError(f"okdbench report failed (exit {code}); the runs are in {results_dir}")
    return out_html


def run_demo(*, runs: int = 4, repeat: int = 2, out: Path | None = None, keep: bool = False,
             progress: Progress | None = None, placement: Placement = Placement(), load_host: bool = False) -> DemoResult:
    if runs < 1:
        raise UserError(f"--runs: {runs} is not allowed; use 1 or more (3+ for statistics)")
    if repeat < 1:
        raise UserError(f"--repeat: {repeat} is not allowed; use 1 or more")
    progress = progress or Progress()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = (out or ROOT / "reports" / "out" / f"demo-{stamp}").resolve()
    results_dir = out / "results"
    logs_dir = out / "logs"
    for d in (results_dir, logs_dir):
        d.mkdir(parents=True, exist_ok=True)
    progress("demo", f"{runs} run(s) per platform x {len(LABELS)} platforms, --repeat {repeat}, output in {out}")
    specs = prepare(out, repeat, progress, placement=placement)
    result = DemoResult(out=out, results_dir=results_dir, report=None)
    order = run_order(runs)
    last_index = {label: max(i for lbl, i in order if lbl == label) for label in LABELS}
    from okdbench.cli import sigterm_as_interrupt

    with sigterm_as_interrupt():
        for n, (label, index) in enumerate(order, 1):
            keep_this = keep and index == last_index[label]
            # --load-host: every second run of each platform under a CPU burner, so the report flags it as contended.
            burner = hostload.start() if load_host and index % 2 == 1 else None
            try:
                result.runs.append(run_one(label, index, specs[label], repeat, results_dir, logs_dir, progress,
                                           f"{n}/{len(order)}" + (" (host loaded)" if burner else ""), keep_this))
            except DemoInterrupted as exc:
                exc.runs[:0] = result.runs
                raise
            finally:
                hostload.stop(burner)
    if runs < 3:
        progress("report", f"only {runs} run(s) per platform: the report will say 'not enough samples' (3+ needed)")
    progress("report", f"{CANDIDATE} vs {BASELINE}")
    result.report = make_report(results_dir, out / "demo-report.html")
    result.hypervisor = _hypervisor(results_dir)
    result.failures = criterion_failures(results_dir)
    result.seconds = progress.elapsed()
    if keep:
        progress("keep", "the last run of each platform is left in place; remove with "
                 + " and ".join(f"`okdbench destroy --spec {specs[label]}`" for label in LABELS))
    return result


# kvm-default is libvirt's untuned configuration on purpose: the platform audit is expected to flag it.
# The security audit flags both on a host without SELinux/AppArmor (kvm.svirt), as most CI machines are.
EXPECTED_FAILURES = {(BASELINE, "platform-audit"), *((label, "security-audit") for label in LABELS)}


@dataclass
class CriterionFailure:
    label: str
    criterion: str
    status: str
    detail: str
    run_id: str

    @property
    def expected(self) -> bool:
        return (self.label, self.criterion) in EXPECTED_FAILURES


def criterion_failures(results_dir: Path) -> list[CriterionFailure]:
    """Every failed or errored criterion of every run, read back from the results (not from pytest)."""
    from results.store import load_runs

    runset = load_runs([results_dir])
    df = runset.criteria
    bad = df[df["status"].isin(["failed", "error"])]
    return [CriterionFailure(str(r.platform), str(r.criterion), str(r.status), str(r.detail), str(r.run_id))
            for r in bad.itertuples()]


def _hypervisor(results_dir: Path) -> dict:
    for run_json in sorted(results_dir.glob("*/run.json")):
        facts = json.loads(run_json.read_text()).get("hypervisor") or {}
        if facts:
            return facts
    return {}
