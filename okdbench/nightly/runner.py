"""One nightly: run the suites per platform, regenerate the report with trends, summarise.

Each platform is one `python -m pytest suites/ ...` subprocess (one pytest session = one run):
a crash, hang or leak in a suite cannot take the nightly down, and a timeout can stop it.
The subprocess's output is redacted line by line before it reaches the log or the terminal.

Exit codes: 0 all good; 1 a regression was flagged or a criterion failed; 2 the run itself
could not happen (bad config, lock held, a platform's session could not run, no report).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from okdbench import __version__
from plumbing.errors import UserError
from okdbench.nightly.config import NightlyConfig, PlatformRun
from okdbench.nightly.lock import NightlyLock
from okdbench.nightly.notify import post_summary
from okdbench.nightly.report import ReportOutcome
from okdbench.nightly.retention import apply_retention
from plumbing.redact import (
    install_log_filter,
    redact_argv,
    redact_text,
    register_env_secrets,
    register_file_secrets,
    register_spec_secrets,
)
from results.schema import iso, one_line, utcnow
from results.store import load_runs, new_run_id

log = logging.getLogger("okdbench.nightly")

ROOT = Path(__file__).resolve().parent.parent.parent
SUITES = "suites"
FAILED_CRITERION = ("failed", "error")
# After SIGTERM the plugin marks the run aborted and tears down; give it this long before SIGKILL.
TERM_GRACE_S = 60.0

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


@dataclass
class PlatformOutcome:
    label: str
    platform: str
    run_id: str
    run_dir: str
    command: list[str]
    log_file: str
    pytest_exit: int | None = None
    status: str | None = None  # run.json status
    duration_s: float = 0.0
    samples: int = 0
    criteria: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # one line: why this platform's run could not happen


# ------------------------------------------------------------------ preflight


def preflight(cfg: NightlyConfig, root: Path = ROOT) -> None:
    """Everything checkable before touching a cluster; raises UserError (one line)."""
    from provision.spec import load_spec

    available = sorted(p.stem.removeprefix("test_") for p in (root / SUITES).glob("test_*.py"))
    for i, p in enumerate(cfg.platforms):
        for j, name in enumerate(p.suites):
            if name not in available:
                raise UserError(
                    f"platforms[{i}].suites[{j}]: {name!r} is not a suite; use one of {', '.join(available) or '(none found)'}"
                )
        if p.spec is not None:
            spec = load_spec(p.spec)
            if spec.platform != p.platform:
                raise UserError(f"platforms[{i}].spec: {p.spec} is for platform {spec.platform!r}, not {p.platform!r}; make them agree")
            register_spec_secrets(spec)
        if p.kubeconfig is not None:
            if not p.kubeconfig.is_file():
                raise UserError(f"platforms[{i}].kubeconfig: {p.kubeconfig} does not exist; pass the kubeconfig of a running cluster")
            register_file_secrets(p.kubeconfig)


# ------------------------------------------------------------------ one platform


def pytest_argv(p: PlatformRun, cfg: NightlyConfig, run_id: str) -> list[str]:
    targets = [f"{SUITES}/test_{name}.py" for name in p.suites] or [f"{SUITES}/"]
    argv = [sys.executable, "-m", "pytest", *targets, "-p", "no:cacheprovider",
            "--platform", p.platform, "--label", p.label]
    if p.spec is not None:
        argv += ["--spec", str(p.spec)]
        if p.keep_cluster:
            argv.append("--keep-cluster")
    if p.kubeconfig is not None:
        argv += ["--kubeconfig", str(p.kubeconfig)]
    argv += ["--repeat", str(p.repeat), "--results-dir", str(cfg.results_dir), "--run-id", run_id]
    if p.soak > 0:
        argv += ["--soak", f"{p.soak:g}s"]
    if p.insecure:
        argv.append("--insecure")
    return argv + list(p.pytest_args)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If the nightly is SIGKILLed, its suites get SIGTERM (and mark their run aborted) instead
    # of running on orphaned, with nobody left to read their result.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()


def run_platform(p: PlatformRun, cfg: NightlyConfig, run_id: str, root: Path = ROOT,
                 echo: Callable[[str], None] | None = None) -> PlatformOutcome:
    argv = pytest_argv(p, cfg, run_id)
    log_file = Path(cfg.logs_dir) / f"{run_id}-{p.label}.log"
    out = PlatformOutcome(label=p.label, platform=p.platform, run_id=run_id, run_dir=str(Path(cfg.results_dir) / run_id),
                          command=redact_argv(argv), log_file=str(log_file))
    if p.insecure:
        log.warning("%s: insecure: true — TLS certificates are NOT verified for this platform; recorded in run.json and the report", p.label)
    log.info("%s: running %s", p.label, " ".join(out.command[2:]))
    start = time.monotonic()
    # The suites import okdbench/results/provision from this installation, wherever suites_root is.
    pythonpath = os.pathsep.join(x for x in (str(ROOT), os.environ.get("PYTHONPATH", "")) if x)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": pythonpath}
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        logfh = open(log_file, "w", encoding="utf-8")
    except OSError as exc:
        out.error = f"logs_dir: cannot write {log_file} ({exc.strerror}); pick a writable directory"
        return out
    try:
        proc = subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    except OSError as exc:
        logfh.close()
        out.error = f"cannot start pytest ({exc.strerror})"
        return out
    last_lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = redact_text(raw.decode("utf-8", "replace").rstrip("\n"))
            logfh.write(line + "\n")
            logfh.flush()
            if line.strip():
                last_lines.append(line)
                del last_lines[:-20]
            if echo is not None:
                echo(f"[{p.label}] {line}")

    reader = threading.Thread(target=pump, name=f"pytest-{p.label}", daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=p.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        log.error("%s: no result after %.0fs (timeout); stopping the session", p.label, p.timeout)
        _stop(proc)
    except BaseException:
        _stop(proc)
        raise
    finally:
        reader.join(timeout=10)
        logfh.close()
    out.pytest_exit = proc.returncode
    out.duration_s = round(time.monotonic() - start, 3)
    _read_back(out)
    if timed_out:
        out.error = f"timeout: the session ran longer than {p.timeout:g}s and was stopped; raise platforms[].timeout or look at {log_file}"
    elif out.status is None:
        out.error = f"pytest exited {proc.returncode} without writing a run: {_why(last_lines)} (log: {log_file})"
    elif proc.returncode not in (0, 1):
        out.error = f"pytest exited {proc.returncode} ({_EXIT_NAMES.get(proc.returncode, 'unexpected')}): {_why(last_lines)} (log: {log_file})"
    log.info("%s: run %s %s in %.1fs: %d samples, criteria %s", p.label, run_id, out.status or "not written",
             out.duration_s, out.samples, out.criteria or "none")
    return out


_EXIT_NAMES = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}


def _why(lines: list[str]) -> str:
    """The line that explains a failed session: pytest's ERROR line, else the last line."""
    def useful(line: str) -> bool:
        return not line.startswith(("ERROR: usage:", "  inifile:", "  rootdir:"))

    for pattern in (r"(?i)\berror: ", r"^(E |ERROR|okdbench)|Error\b"):
        for line in reversed(lines):
            if useful(line) and re.search(pattern, line):
                return one_line(line, 300)
    return one_line(lines[-1], 300) if lines else "no output"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=TERM_GRACE_S)
    except (ProcessLookupError, PermissionError):
        pass
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _read_back(out: PlatformOutcome) -> None:
    run_dir = Path(out.run_dir)
    if not run_dir.is_dir():
        return
    rs = load_runs([run_dir])
    if not rs.runs:
        out.error = f"run folder {run_dir} is unreadable: {'; '.join(rs.skipped) or 'no run.json'}"
        return
    out.status = rs.runs[0].status
    out.samples = int(len(rs.samples))
    if len(rs.criteria):
        out.criteria = {str(k): int(v) for k, v in rs.criteria["status"].value_counts().items()}


# ------------------------------------------------------------------ report


def regenerate_report(cfg: NightlyConfig) -> ReportOutcome:
    """The comparison report over every run in results_dir, with trends; the reports helper's code."""
    from okdbench.nightly.report import nightly_report  # the analysis stack loads only when a report is due

    return nightly_report(cfg)


# ------------------------------------------------------------------ the nightly


def _criteria_failed(results_dir: Path, run_ids: list[str]) -> list[dict[str, Any]]:
    dirs = [Path(results_dir) / r for r in run_ids if (Path(results_dir) / r).is_dir()]
    if not dirs:
        return []
    rs = load_runs(dirs)
    c = rs.criteria
    bad = c[c["status"].isin(FAILED_CRITERION)]
    return [
        {"run_id": str(r.run_id), "platform": str(r.platform), "criterion": str(r.criterion),
         "status": str(r.status), "detail": redact_text(r.detail or "")}
        for r in bad.itertuples(index=False)
    ]


def _runs_included(results_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    rs = load_runs([results_dir]) if Path(results_dir).is_dir() else None
    if rs is None:
        return [], []
    counts = rs.samples.groupby("run_id", observed=True).size().to_dict() if len(rs.samples) else {}
    runs = [
        {"run_id": r.run_id, "platform": r.platform, "started": r.started, "status": r.status,
         "outcome": r.outcome, "samples": int(counts.get(r.run_id, 0))}
        for r in sorted(rs.runs, key=lambda r: (r.started or "", r.run_id))
    ]
    return runs, list(rs.skipped)


def _redact_tree(obj: Any) -> Any:
    """Every string in a JSON-like tree, redacted (redacting the serialised text could break its syntax)."""
    if isinstance(obj, dict):
        return {k: _redact_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redact_tree(v) for v in obj]
    return redact_text(obj) if isinstance(obj, str) else obj


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _attach_log_file(cfg: NightlyConfig, nightly_id: str) -> logging.Handler | None:
    try:
        Path(cfg.logs_dir).mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(Path(cfg.logs_dir) / f"nightly-{nightly_id}.log", encoding="utf-8")
    except OSError as exc:
        log.warning("logs_dir: cannot write %s (%s); logging to stderr only", cfg.logs_dir, exc.strerror)
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def run_nightly(
    cfg: NightlyConfig,
    *,
    only: list[str] | None = None,
    echo: Callable[[str], None] | None = None,
    report: Callable[[NightlyConfig], ReportOutcome] | None = None,
    root: Path = ROOT,
) -> tuple[int, dict[str, Any]]:
    """Run one nightly; returns (exit code, summary). Raises UserError when it cannot start."""
    install_log_filter()
    register_env_secrets()
    root = cfg.suites_root or root
    preflight(cfg, root)
    platforms = [p for p in cfg.platforms if not only or p.label in only]
    if only:
        unknown = sorted(set(only) - {p.label for p in cfg.platforms})
        if unknown:
            raise UserError(f"--only: {', '.join(unknown)} is not a platform label in the config; use one of "
                            f"{', '.join(p.label for p in cfg.platforms)}")
    report = report or regenerate_report
    with NightlyLock(cfg.lock_path) as lock:
        nightly_id = new_run_id()
        handler = _attach_log_file(cfg, nightly_id)
        try:
            return _run_locked(cfg, platforms, nightly_id, lock, echo, report, root)
        finally:
            if handler is not None:
                logging.getLogger().removeHandler(handler)
                handler.close()


def _run_locked(cfg: NightlyConfig, platforms: list[PlatformRun], nightly_id: str, lock: NightlyLock,
                echo: Callable[[str], None] | None, report: Callable[[NightlyConfig], ReportOutcome],
                root: Path) -> tuple[int, dict[str, Any]]:
    started = utcnow()
    t0 = time.monotonic()
    errors: list[str] = []
    warnings: list[str] = []
    if lock.took_over is not None:
        warnings.append(f"took over a stale lock from {lock.took_over.describe()}")
    log.info("nightly %s: %d platform(s): %s", nightly_id, len(platforms), ", ".join(p.label for p in platforms))
    outcomes: list[PlatformOutcome] = []
    for i, p in enumerate(platforms, 1):
        log.info("phase %d/%d: %s (elapsed %.0fs)", i, len(platforms), p.label, time.monotonic() - t0)
        run_id = new_run_id()
        outcome = run_platform(p, cfg, run_id, root, echo=echo)
        outcomes.append(outcome)
        if outcome.error:
            errors.append(f"{p.label}: {outcome.error}")
            log.error("%s: %s", p.label, outcome.error)

    log.info("phase report: regenerating %s with trends (elapsed %.0fs)", cfg.report_name, time.monotonic() - t0)
    try:
        rep = report(cfg)
    except UserError as exc:
        rep = ReportOutcome(path=None, regressions=[], worse=[], warnings=[])
        errors.append(f"report: {exc}")
        log.error("report: %s", exc)
    except Exception as exc:  # noqa: BLE001 - the summary must still be written
        rep = ReportOutcome(path=None, regressions=[], worse=[], warnings=[])
        errors.append(f"report: {type(exc).__name__}: {one_line(redact_text(exc), 300)}")
        log.exception("report generation failed")
    warnings.extend(rep.warnings)

    criteria_failed = _criteria_failed(cfg.results_dir, [o.run_id for o in outcomes])
    tests_failed = [o.label for o in outcomes if o.pytest_exit == 1 and not o.error]
    runs, skipped = _runs_included(cfg.results_dir)
    warnings.extend(f"skipped unreadable run folder {s}" for s in skipped)

    log.info("phase retention: keeping raw JSONL of the newest %d runs", cfg.retention.keep_jsonl_runs)
    retention = apply_retention(cfg.results_dir, cfg.retention.keep_jsonl_runs)

    if errors:
        code, verdict = EXIT_ERROR, "error"
    elif rep.regressions or criteria_failed or tests_failed:
        code, verdict = EXIT_FAILED, "failed"
    else:
        code, verdict = EXIT_OK, "ok"
    baseline, candidate = cfg.comparison()
    summary: dict[str, Any] = {
        "schema": "okdbench.nightly.summary/1",
        "nightly_id": nightly_id,
        "okdbench_version": __version__,
        "started": iso(started),
        "finished": iso(utcnow()),
        "duration_s": round(time.monotonic() - t0, 3),
        "exit_code": code,
        "verdict": verdict,
        "baseline": baseline,
        "candidate": candidate,
        "platforms": [asdict(o) for o in outcomes],
        "criteria_failed": criteria_failed,
        "tests_failed": tests_failed,
        "regressions": rep.regressions,
        "worse_than_baseline": rep.worse,
        "contended_runs": rep.contended,
        "runs_included": runs,
        "incomplete_runs": [r["run_id"] for r in runs if r["status"] != "complete"],
        "failed_runs": [r["run_id"] for r in runs if r["outcome"] == "failed"],
        "report": rep.path,
        "errors": errors,
        "warnings": warnings,
        "retention": {"pruned_jsonl": len(retention.pruned), "freed_bytes": retention.freed_bytes,
                      "kept_without_parquet": len(retention.kept_unsafe)},
    }
    summary = _redact_tree(json.loads(json.dumps(summary, default=str)))
    summary_path = Path(cfg.reports_dir) / "summary.json"
    try:
        write_json_atomic(summary_path, summary)
        log.info("summary: %s (exit %d: %s)", summary_path, code, verdict)
    except OSError as exc:
        log.error("reports_dir: cannot write %s (%s)", summary_path, exc.strerror)
        code = EXIT_ERROR
        summary["exit_code"] = code
    if cfg.notify is not None:
        n = cfg.notify
        post_summary(n.webhook_url, summary, timeout=n.timeout, retries=n.retries, backoff=n.backoff, ca_bundle=n.ca_bundle)
    return code, summary
