"""`okdbench demo`: the whole pipeline on one Linux machine, with real VMs and real numbers.

prepare (libvirtd in netns `okdbench`, the test guest, a storage pool, the two specs)
  -> N runs per platform, alternating kvm-default / kvm-tuned, each one `pytest suites/` session
     (the plugin provisions the micro topology from --spec, the suites measure, the plugin destroys)
  -> `okdbench report` kvm-tuned vs kvm-default.

Each run is a separate pytest process, exactly what a user or the nightly runner would start, so
the demo exercises the real entry points rather than a shortcut.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import yaml

from plumbing.errors import UserError

log = logging.getLogger("okdbench.demo")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CACHE = ROOT / ".cache"
LABELS = ("kvm-default", "kvm-tuned")
BASELINE, CANDIDATE = LABELS
PROBES = "cpu,fsync,seqwrite,rtt"
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


def demo_spec(template: dict, *, kernel: Path, initrd: Path, repeat: int, pool: str = POOL) -> dict:
    """The example spec with the built guest, its probes and the repetition count filled in."""
    spec = json.loads(json.dumps(template))  # deep copy of plain YAML data
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


def prepare(out: Path, repeat: int, progress: Progress, uri: str = "qemu:///system") -> dict[str, Path]:
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
        data = demo_spec(template, kernel=guest.kernel, initrd=guest.initrd, repeat=repeat)
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


def run_one(label: str, index: int, spec: Path, repeat: int, results_dir: Path, logs_dir: Path,
            progress: Progress, position: str, keep: bool) -> RunOutcome:
    log_path = logs_dir / f"{label}-{index}.log"
    argv = pytest_argv(label, spec, repeat, results_dir, keep)
    before = {p.name for p in results_dir.iterdir()} if results_dir.exists() else set()
    t0 = time.monotonic()
    progress(f"run {position} {label}", "starting pytest suites/")
    env = dict(os.environ, PYTHONUNBUFFERED="1", OKDBENCH_WORKDIR=str(results_dir.parent / "work"))
    with open(log_path, "w") as fh:
        fh.write("$ " + " ".join(argv) + "\n")
        fh.flush()
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert proc.stdout is not None
        seen = set()
        for line in proc.stdout:
            fh.write(line)
            for marker, phase in _PHASES:
                if marker in line and phase not in seen:
                    seen.add(phase)
                    progress(f"run {position} {label}", phase)
        code = proc.wait()
    seconds = time.monotonic() - t0
    new = sorted(p for p in results_dir.iterdir() if p.name not in before and (p / "run.json").exists()) \
        if results_dir.exists() else []
    outcome = RunOutcome(label=label, index=index, exit_code=code, seconds=seconds, log=log_path,
                         run_dir=new[-1] if new else None)
    summary = _summarise(outcome.run_dir)
    progress(f"run {position} {label}", f"done in {seconds:.0f} s ({summary}; log {log_path.name})")
    return outcome


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

    code = cli.main(["report", str(results_dir), "--baseline", BASELINE, "--candidate", CANDIDATE,
                     "--out", str(out_html), "--title", "okdbench demo: kvm-tuned vs kvm-default (micro topology)"])
    if code != 0 or not out_html.exists():
        raise UserError(f"okdbench report failed (exit {code}); the runs are in {results_dir}")
    return out_html


def run_demo(*, runs: int = 3, repeat: int = 3, out: Path | None = None, keep: bool = False,
             progress: Progress | None = None) -> DemoResult:
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
    specs = prepare(out, repeat, progress)
    result = DemoResult(out=out, results_dir=results_dir, report=None)
    order = run_order(runs)
    last_index = {label: max(i for lbl, i in order if lbl == label) for label in LABELS}
    for n, (label, index) in enumerate(order, 1):
        keep_this = keep and index == last_index[label]
        result.runs.append(run_one(label, index, specs[label], repeat, results_dir, logs_dir, progress,
                                   f"{n}/{len(order)}", keep_this))
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
EXPECTED_FAILURES = {(BASELINE, "platform-audit")}


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
