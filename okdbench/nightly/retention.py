"""Retention: keep the raw JSONL of the newest N runs; always keep Parquet and run.json.

JSONL is deleted only where Parquet holds at least as many rows: an incomplete run (killed
before compaction) or a run whose Parquet is damaged keeps its JSONL, the only copy of its data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from plumbing.safe_load import MAX_LINE_BYTES, parse_json, read_json_file

from results.schema import CRITERIA_JSONL, CRITERIA_PARQUET, RUN_FILE, SAMPLES_JSONL, SAMPLES_PARQUET
from results.store import find_run_dirs

log = logging.getLogger("okdbench.nightly.retention")

PAIRS = ((SAMPLES_JSONL, SAMPLES_PARQUET), (CRITERIA_JSONL, CRITERIA_PARQUET))


@dataclass
class RetentionResult:
    pruned: list[str] = field(default_factory=list)  # JSONL files deleted
    kept_unsafe: list[str] = field(default_factory=list)  # old JSONL kept: no matching Parquet
    freed_bytes: int = 0


def _run_order_key(run_dir: Path) -> tuple[str, str]:
    """Sort by run.json 'started' (ISO 8601 sorts as text); run ids are time-sortable as a fallback."""
    started = ""
    try:
        data = read_json_file(run_dir / RUN_FILE, "run.json", "a run.json", ValueError)
        if isinstance(data, dict) and isinstance(data.get("started"), str):
            started = data["started"]
    except ValueError:
        pass
    return started, run_dir.name


def _jsonl_rows(path: Path) -> int:
    count = 0
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                count += 1
    return count


def _parquet_covers(jsonl: Path, parquet: Path) -> bool:
    if not parquet.exists():
        return False
    try:
        rows = pq.read_metadata(parquet).num_rows
    except (OSError, pa.ArrowException):
        return False
    # A JSONL line that was unreadable (torn last line) is not in Parquet; >= would still hold
    # for every line that carried data, so compare against readable lines only when in doubt.
    return rows >= _jsonl_rows(jsonl) or rows >= _readable_rows(jsonl)


def _readable_rows(path: Path) -> int:
    count = 0
    with open(path, "rb") as fh:
        for line in fh:
            try:
                if len(line) <= MAX_LINE_BYTES and isinstance(parse_json(line, "line", ValueError), dict):
                    count += 1
            except ValueError:
                pass
    return count


def apply_retention(results_dir: Path, keep_jsonl_runs: int) -> RetentionResult:
    result = RetentionResult()
    if not Path(results_dir).is_dir():
        return result
    runs = sorted(find_run_dirs([results_dir]), key=_run_order_key)
    old = runs[: max(0, len(runs) - keep_jsonl_runs)]
    for run_dir in old:
        for jsonl_name, parquet_name in PAIRS:
            jsonl = run_dir / jsonl_name
            if not jsonl.exists():
                continue
            try:
                covered = _parquet_covers(jsonl, run_dir / parquet_name)
            except OSError as exc:
                log.warning("retention: cannot check %s (%s); keeping it", jsonl, exc.strerror)
                covered = False
            if not covered:
                result.kept_unsafe.append(str(jsonl))
                continue
            try:
                size = jsonl.stat().st_size
                jsonl.unlink()
            except OSError as exc:
                log.warning("retention: cannot delete %s (%s)", jsonl, exc.strerror)
                continue
            result.pruned.append(str(jsonl))
            result.freed_bytes += size
    if result.pruned:
        log.info("retention: removed raw JSONL of %d file(s) (%.1f MiB); Parquet kept", len(result.pruned), result.freed_bytes / 2**20)
    if result.kept_unsafe:
        log.info("retention: kept %d old JSONL file(s) without a complete Parquet copy", len(result.kept_unsafe))
    return result
