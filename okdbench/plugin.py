"""The pytest plugin behind `pytest suites/`: options, the run folder, `record`, `criterion`, `--repeat`.

Thin by design: results go through results.store, clusters through provision.*.
One pytest session is one run.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from okdbench import __version__
from plumbing.errors import UserError, bounded_lines
from okdbench.paths import ROOT, SUITES_DIR
from plumbing.redact import error_line, redact_text
from results.schema import DETAIL_LIMIT, CriterionResult, NodeGroupInfo, RunInfo, Sample, iso, one_line, utcnow
from results.store import ResultsWriteError, RunWriter, new_run_id

NO_CLUSTER = "no OKD cluster (pass --kubeconfig or an OKD --spec)"

log = logging.getLogger("okdbench.plugin")

_writer_key = pytest.StashKey["RunWriter"]()
_config_key = pytest.StashKey["SessionConfig"]()
_reports_key = pytest.StashKey[list]()
_notes_key = pytest.StashKey[list]()
_finish_error_key = pytest.StashKey[str]()


@dataclass
class SessionConfig:
    platform: str
    label: str
    spec: Any  # provision.spec.ClusterSpec | None
    kubeconfig: Path | None
    repeat: int
    results_dir: Path
    run_id: str
    keep_cluster: bool
    soak_s: float
    insecure: bool


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("okdbench", "okdbench: run POC criteria and benchmarks against a cluster")
    g.addoption("--platform", choices=["kvm", "vsphere"], help="hypervisor the cluster runs on (required for suites/)")
    g.addoption("--label", help="name results and reports use for this platform (default: --platform), e.g. kvm-tuned")
    g.addoption("--spec", help="cluster spec YAML: provision the cluster (or its VMs) from it, destroy at the end")
    g.addoption("--kubeconfig", help="kubeconfig of an existing cluster to test (nothing is provisioned)")
    g.addoption("--repeat", type=int, default=1, help="run each benchmark N times (repetition 0..N-1)")
    g.addoption("--results-dir", default=str(ROOT / "results"), help="where run folders are written (default results/)")
    g.addoption("--run-id", help="id of this run (default: time-sortable unique id)")
    g.addoption("--keep-cluster", action="store_true", help="do not destroy what --spec provisioned")
    g.addoption("--soak", default="0", help="stability watch window, e.g. 30m, 90s (default: no soak)")
    g.addoption("--insecure", action="store_true", help="do not verify TLS (recorded in run.json and the report)")


def _is_suites_session(config: pytest.Config) -> bool:
    if config.getoption("platform"):
        return True
    for arg in config.args:
        path = Path(str(arg).split("::", 1)[0])
        path = (Path(config.invocation_params.dir) / path).resolve()
        if path == SUITES_DIR or SUITES_DIR in path.parents:
            return True
    return False


_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)?$")


def parse_duration(text: str) -> float:
    m = _DURATION_RE.match(str(text).strip())
    if not m:
        raise UserError(f"--soak: {text!r} is not a duration; use e.g. 90s, 30m or 2h")
    return float(m.group(1)) * {"s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def _session_config(config: pytest.Config) -> SessionConfig:
    platform = config.getoption("platform")
    if not platform:
        raise UserError("--platform is required for suites/: pass --platform=kvm or --platform=vsphere")
    repeat = config.getoption("repeat")
    if repeat < 1:
        raise UserError(f"--repeat: {repeat} is not allowed; use 1 or more")
    spec = None
    if config.getoption("spec"):
        from provision.spec import load_spec

        spec = load_spec(config.getoption("spec"))
        if spec.platform != platform:
            raise UserError(f"--spec: {spec.source} is for platform {spec.platform!r} but --platform={platform}; make them agree")
    kubeconfig = config.getoption("kubeconfig")
    if kubeconfig:
        kubeconfig = Path(kubeconfig).expanduser().resolve()
        if not kubeconfig.is_file():
            raise UserError(f"--kubeconfig: {kubeconfig} does not exist; pass the kubeconfig of the cluster to test")
    label = config.getoption("label") or platform
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", label):
        raise UserError(f"--label: {label!r} is not allowed; use letters, digits, '.', '_' or '-' (e.g. kvm-tuned)")
    run_id = config.getoption("run_id") or new_run_id()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", run_id):
        raise UserError(f"--run-id: {run_id!r} is not allowed; use letters, digits, '.', '_' or '-'")
    return SessionConfig(
        platform=platform,
        label=label,
        spec=spec,
        kubeconfig=kubeconfig,
        repeat=repeat,
        results_dir=Path(config.getoption("results_dir")).expanduser().resolve(),
        run_id=run_id,
        keep_cluster=config.getoption("keep_cluster"),
        soak_s=parse_duration(config.getoption("soak")),
        insecure=config.getoption("insecure"),
    )


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _redacted_argv() -> list[str]:
    from plumbing.redact import redact_argv

    return redact_argv(sys.argv)


def _cluster_name(cfg: SessionConfig) -> str:
    if cfg.spec is not None:
        return cfg.spec.name
    if cfg.kubeconfig is not None:
        from provision.cluster import cluster_name_from_kubeconfig

        return cluster_name_from_kubeconfig(cfg.kubeconfig)
    return "none"


def _nodes_from_spec(spec: Any) -> list[NodeGroupInfo]:
    return [NodeGroupInfo(role=g.role, count=g.count, vcpu=g.vcpu, memory_mib=g.memory_mib, disk_gib=g.disk_gib) for g in spec.nodes]


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    # A nightly timer or `kill` stops the run like Ctrl-C does: the run ends 'aborted', not unfinished.
    raise KeyboardInterrupt


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "criterion(name): ties a test to a POC acceptance criterion")
    config.addinivalue_line("markers", "benchmark: a measurement repeated --repeat N times")
    if not _is_suites_session(config) or hasattr(config, "workerinput"):
        return
    from plumbing.redact import install_log_filter, register_env_secrets, register_file_secrets

    install_log_filter()
    register_env_secrets()
    try:
        cfg = _session_config(config)
        register_file_secrets(cfg.kubeconfig)
        if cfg.insecure:
            log.warning("--insecure: TLS certificates are NOT verified; this is recorded in run.json and the report")
        info = RunInfo(
            run_id=cfg.run_id,
            platform=cfg.label,
            hypervisor_platform=cfg.platform,
            cluster=_cluster_name(cfg),
            started=iso(utcnow()),
            okdbench_version=__version__,
            suite_commit=_git_commit(),
            command_line=_redacted_argv(),
            insecure=cfg.insecure,
            nodes=_nodes_from_spec(cfg.spec) if cfg.spec is not None else [],
        )
        writer = RunWriter(cfg.results_dir, info)
    except (UserError, ResultsWriteError) as exc:
        details = [error_line(d) for d in bounded_lines(getattr(exc, "details", []))]
        raise pytest.UsageError(error_line(exc), *details) from None
    config.stash[_config_key] = cfg
    config.stash[_writer_key] = writer
    if threading_main():
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    if config.getoption("log_cli_level") is None and not config.getini("log_cli"):
        # Long work (provisioning, bootstrap waits, builds) shows phase and elapsed time live.
        config.option.log_cli_level = "INFO"


def _write(config: pytest.Config, write: Callable[[Any], None], record: Any) -> None:
    """Results that cannot be written end the run: measuring on without recording is wasted work."""
    try:
        write(record)
    except ResultsWriteError as exc:
        pytest.exit(error_line(f"okdbench: {exc}"), returncode=pytest.ExitCode.INTERNAL_ERROR)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def pytest_report_header(config: pytest.Config) -> list[str]:
    writer = config.stash.get(_writer_key, None)
    if writer is None:
        return []
    cfg = config.stash[_config_key]
    return [f"okdbench: run {cfg.run_id} platform={cfg.label} ({cfg.platform}) -> {writer.dir}"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    writer = session.config.stash.get(_writer_key, None)
    if writer is None or writer.info.status != "running":
        return
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        status = "aborted"
    elif exitstatus in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        status = "incomplete"
    else:
        status = "complete"
    try:
        writer.finish(status)
    except ResultsWriteError as exc:
        session.config.stash[_finish_error_key] = str(exc)
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    writer = config.stash.get(_writer_key, None)
    if writer is None:
        return
    error = config.stash.get(_finish_error_key, None)
    if error:
        terminalreporter.write_line(f"okdbench: error: {error}", red=True)
    failed = ", FAILED: every criterion errored" if writer.info.outcome == "failed" else ""
    terminalreporter.write_line(
        f"okdbench: {writer.sample_count} samples, {writer.criterion_count} criteria -> {writer.dir} ({writer.info.status}{failed})"
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    writer = config.stash.get(_writer_key, None)
    if writer is not None and writer.info.status == "running" and _finish_error_key not in config.stash:
        try:
            writer.finish("incomplete")
        except ResultsWriteError as exc:
            print(f"okdbench: error: {exc}", file=sys.stderr)


# ------------------------------------------------------------------ repeat


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    cfg = metafunc.config.stash.get(_config_key, None)
    if cfg is None or cfg.repeat <= 1 or metafunc.definition.get_closest_marker("benchmark") is None:
        return
    metafunc.fixturenames.append("_okdbench_repetition")
    metafunc.parametrize("_okdbench_repetition", range(cfg.repeat), ids=lambda i: f"rep{i}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    # Run conditions (suites/context) are captured over each benchmark repetition's call, not its setup.
    capture = item.funcargs.get("conditions") if item.get_closest_marker("benchmark") else None  # type: ignore[attr-defined]
    if capture is None:
        yield
        return
    with capture.window(f"{suite_name(item)}.{getattr(item, 'originalname', item.name)}", _repetition(item)):
        yield


def _repetition(item: pytest.Item) -> int:
    callspec = getattr(item, "callspec", None)
    return int(callspec.params.get("_okdbench_repetition", 0)) if callspec else 0


def suite_name(item: pytest.Item) -> str:
    module = item.module.__name__.rsplit(".", 1)[-1] if getattr(item, "module", None) else item.path.stem
    return module.removeprefix("test_")


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def okdbench_config(request: pytest.FixtureRequest) -> SessionConfig:
    cfg = request.config.stash.get(_config_key, None)
    if cfg is None:
        pytest.skip("not an okdbench suites session (run `pytest suites/ --platform=...`)")
    return cfg


@pytest.fixture(scope="session")
def run_writer(request: pytest.FixtureRequest, okdbench_config: SessionConfig) -> RunWriter:
    return request.config.stash[_writer_key]


Recorder = Callable[..., Sample]


@pytest.fixture
def record(request: pytest.FixtureRequest, run_writer: RunWriter, okdbench_config: SessionConfig) -> Recorder:
    """record(metric, value, unit, better="lower", **labels): one sample, on disk before it returns."""
    suite = suite_name(request.node)
    repetition = _repetition(request.node)

    def _record(metric: str, value: float, unit: str, better: str = "lower", **labels: Any) -> Sample:
        sample = Sample(
            run_id=okdbench_config.run_id,
            platform=okdbench_config.label,
            cluster=run_writer.info.cluster,
            suite=suite,
            metric=metric,
            value=float(value),
            unit=unit,
            better=better,  # type: ignore[arg-type]
            repetition=repetition,
            labels=labels,
        )
        _write(request.config, run_writer.record_sample, sample)
        return sample

    return _record


@pytest.fixture
def note(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """note("Upgradeable=False on 2 operators"): added to this criterion's one-line detail."""
    notes = request.node.stash.setdefault(_notes_key, [])
    return notes.append


def criterion_notes(item: pytest.Item) -> list[str]:
    """The notes a test added with `note`, in order (joined after the reason in the detail)."""
    return list(item.stash.get(_notes_key, []))


@pytest.fixture(scope="session")
def spec(okdbench_config: SessionConfig) -> Any:
    return okdbench_config.spec


@pytest.fixture(scope="session")
def infra(request: pytest.FixtureRequest, okdbench_config: SessionConfig, run_writer: RunWriter) -> Any:
    """The VMs (and, for OKD specs, the installed cluster) provisioned from --spec for this run."""
    cfg = okdbench_config
    if cfg.spec is None:
        pytest.skip("no --spec given: nothing was provisioned by this run")
    from provision.lifecycle import destroy_cluster, provision_cluster

    workdir = Path(os.environ.get("OKDBENCH_WORKDIR", ROOT / ".cache" / "work")) / f"{cfg.spec.name}-{cfg.run_id}"
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)  # install-config, ignition, auth/ are secrets
    start = time.monotonic()
    log.info("provisioning %s on %s (workdir %s)", cfg.spec.name, cfg.platform, workdir)
    try:
        result = provision_cluster(cfg.spec, workdir, insecure=cfg.insecure)
    except UserError as exc:
        pytest.fail(error_line(f"provisioning failed: {exc}"), pytrace=False)
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM while provisioning: remove what already exists, as a normal end would.
        if not cfg.keep_cluster:
            _teardown(cfg, workdir, destroy_cluster)
        raise
    log.info("provisioned %s in %.1fs", cfg.spec.name, time.monotonic() - start)
    # Template findings (e.g. an E1000 NIC on vSphere) travel with the run, so the report warns.
    run_writer.update_info(hypervisor=result.facts, warnings=[*run_writer.info.warnings, *result.findings])
    for metric, value in sorted(result.timings.items()):
        run_writer.record_sample(
            Sample(run_id=cfg.run_id, platform=cfg.label, cluster=cfg.spec.name, suite="provision",
                   metric=metric, value=float(value), unit="s", labels={"platform": cfg.platform})
        )
    yield result
    if cfg.keep_cluster:
        log.info("--keep-cluster: leaving %s in place", cfg.spec.name)
        return
    _teardown(cfg, workdir, destroy_cluster)


def _teardown(cfg: SessionConfig, workdir: Path, destroy_cluster: Callable[..., list[str]]) -> None:
    """Destroy what --spec provisioned (also after Ctrl-C/SIGTERM); a second interrupt skips it and says so."""
    start = time.monotonic()
    log.info("destroying %s", cfg.spec.name)
    try:
        removed = destroy_cluster(cfg.spec, insecure=cfg.insecure)
        log.info("destroyed %s in %.1fs (%d objects removed)", cfg.spec.name, time.monotonic() - start, len(removed))
    except KeyboardInterrupt:
        log.error("interrupted again: teardown of %s skipped after %.1fs; its VMs, network, volumes and load "
                  "balancer may be left: `okdbench destroy --spec %s` removes them", cfg.spec.name,
                  time.monotonic() - start, cfg.spec.source or "SPEC")
    finally:
        # The workdir holds ignition files and install-config (pull secret): gone with the cluster.
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, okdbench_config: SessionConfig, run_writer: RunWriter) -> Any:
    from provision.cluster import Cluster

    cfg = okdbench_config
    if cfg.kubeconfig is not None:
        return Cluster(name=run_writer.info.cluster, platform=cfg.platform, kubeconfig=cfg.kubeconfig, spec=cfg.spec)
    if cfg.spec is None or cfg.spec.okd.guest != "fcos":
        pytest.skip(NO_CLUSTER)
    result = request.getfixturevalue("infra")
    if result.kubeconfig is None:
        pytest.skip(NO_CLUSTER)
    return Cluster(name=cfg.spec.name, platform=cfg.platform, kubeconfig=result.kubeconfig, spec=cfg.spec,
                   provisioned=True, timings=dict(result.timings), hypervisor=dict(result.facts))


# ------------------------------------------------------------------ criteria


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    if item.get_closest_marker("criterion") is not None:
        item.stash.setdefault(_reports_key, []).append(report)
    return report


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # skip: (path, lineno, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        msg = crash.message
        for prefix in ("AssertionError: ", "Failed: "):
            msg = msg.removeprefix(prefix)
        # pytest appends the rewritten `assert ...` lines; the first line is the author's reason.
        return msg.split("\nassert ", 1)[0]
    return str(longrepr or "")


def criterion_outcome(reports: list[pytest.TestReport]) -> tuple[str, str]:
    """(status, detail) of a criterion test from its setup/call/teardown reports."""
    by_phase = {r.when: r for r in reports}
    setup, call, teardown = by_phase.get("setup"), by_phase.get("call"), by_phase.get("teardown")
    if setup is not None and setup.skipped:
        return "skipped", _reason(setup)
    if setup is not None and setup.failed:
        return "error", "setup: " + _reason(setup)
    if call is not None and call.skipped:
        return "skipped", _reason(call)
    if call is not None and call.failed:
        return "failed", _reason(call)
    if teardown is not None and teardown.failed:
        return "error", "teardown: " + _reason(teardown)
    return "passed", ""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Any:
    yield
    marker = item.get_closest_marker("criterion")
    writer = item.config.stash.get(_writer_key, None)
    if marker is None or writer is None:
        return
    reports = item.stash.get(_reports_key, [])
    if not reports:
        return
    status, detail = criterion_outcome(reports)
    notes = criterion_notes(item)
    detail = "; ".join([d for d in [detail, *notes] if d])
    name = marker.args[0] if marker.args else marker.kwargs.get("name", item.name)
    result = CriterionResult(
        run_id=writer.info.run_id,
        platform=writer.info.platform,
        criterion=name,
        status=status,  # type: ignore[arg-type]
        detail=one_line(redact_text(detail), DETAIL_LIMIT),
        duration_s=sum(r.duration for r in reports),
    )
    _write(item.config, writer.record_criterion, result)
