"""Write and read run folders (`results/<run_id>/`).

Writing: JSONL appended and fsynced per record while a run goes on, so a killed run loses
nothing `record` returned for; Parquet compaction and the final status at the end.
Reading: any number of run folders, Parquet or JSONL, complete or not, into DataFrames.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from plumbing.safe_load import MAX_LINE_BYTES, parse_json, read_json_file
from results.schema import (
    CRITERIA_JSONL,
    CRITERIA_PARQUET,
    CRITERIA_SCHEMA,
    FAILED_RUN_WARNING,
    FINAL_RUN_STATUSES,
    RUN_FILE,
    SAMPLES_JSONL,
    SAMPLES_PARQUET,
    SAMPLES_SCHEMA,
    CriterionResult,
    RunInfo,
    Sample,
    check_row,
    iso,
    parquet_type_problem,
    run_outcome,
    utcnow,
)

log = logging.getLogger("okdbench.results")


class ResultsWriteError(Exception):
    """Results could not be written (disk full, permissions). The message is one line."""


def new_run_id(now: datetime | None = None) -> str:
    """Time-sortable and unique: UTC timestamp to the second plus random suffix."""
    now = now or utcnow()
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_run_info(run_dir: Path, info: RunInfo) -> None:
    data = json.dumps(info.to_json(), indent=2, sort_keys=True, default=str).encode() + b"\n"
    _atomic_write_bytes(run_dir / RUN_FILE, data)


class _JsonlAppender:
    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path, "ab", buffering=0)

    def append(self, obj: dict[str, Any]) -> None:
        line = (json.dumps(obj, sort_keys=True, default=str) + "\n").encode()
        fd = self._fh.fileno()
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(line)
            while view:
                # A filling disk accepts part of a line (short write) before it refuses the rest.
                written = os.write(fd, view)
                if not written:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
            os.fsync(fd)
        except OSError:
            # Leave no torn line behind: records after this one (space freed) must stay readable.
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise

    def close(self) -> None:
        self._fh.close()


class RunWriter:
    """Owns one run folder. Thread-safe: fixtures may record from worker threads."""

    def __init__(self, results_dir: Path | str, info: RunInfo):
        self.info = info
        self.dir = Path(results_dir) / info.run_id
        self._lock = threading.Lock()
        self.sample_count = 0
        self.criterion_count = 0
        self.criterion_statuses: dict[str, int] = {}
        try:
            self.dir.mkdir(parents=True, exist_ok=False)
            write_run_info(self.dir, info)
            self._samples = _JsonlAppender(self.dir / SAMPLES_JSONL)
            self._criteria = _JsonlAppender(self.dir / CRITERIA_JSONL)
        except FileExistsError:
            raise ResultsWriteError(
                f"--run-id: {info.run_id!r} already exists in {results_dir}; pick a new id or omit --run-id"
            ) from None
        except OSError as exc:
            raise ResultsWriteError(f"results dir {self.dir}: cannot write ({exc.strerror})") from None

    def _append(self, target: _JsonlAppender, obj: dict[str, Any]) -> None:
        try:
            target.append(obj)
        except OSError as exc:
            raise ResultsWriteError(
                f"results file {target.path}: cannot append ({exc.strerror}); records written before are intact"
            ) from None

    def record_sample(self, sample: Sample) -> None:
        with self._lock:
            self._append(self._samples, sample.to_json())
            self.sample_count += 1

    def record_criterion(self, result: CriterionResult) -> None:
        with self._lock:
            self._append(self._criteria, result.to_json())
            self.criterion_count += 1
            self.criterion_statuses[result.status] = self.criterion_statuses.get(result.status, 0) + 1

    def update_info(self, **changes: Any) -> None:
        """Add metadata learnt during the run (versions, nodes, hypervisor facts)."""
        with self._lock:
            for key, value in changes.items():
                if key in RunInfo.__dataclass_fields__ and key != "extra":
                    setattr(self.info, key, value)
                else:
                    self.info.extra[key] = value
            try:
                write_run_info(self.dir, self.info)
            except OSError as exc:
                raise ResultsWriteError(f"{self.dir / RUN_FILE}: cannot write ({exc.strerror})") from None

    def finish(self, status: str) -> None:
        """Compact JSONL to Parquet and set the final status. JSONL is kept (retention prunes it)."""
        if status not in FINAL_RUN_STATUSES:
            raise ValueError(f"status: {status!r} is not final")
        with self._lock:
            self._samples.close()
            self._criteria.close()
            try:
                compact(self.dir)
            except (OSError, pa.ArrowException) as exc:
                # Keep the JSONL (the truth); the run reads the same without Parquet.
                log.warning("could not compact %s to Parquet: %s", self.dir, exc)
                status = "incomplete" if status == "complete" else status
            self.info.status = status  # type: ignore[assignment]
            self.info.finished = iso(utcnow())
            self.info.outcome = run_outcome(self.criterion_statuses)  # type: ignore[assignment]
            if self.info.outcome == "failed":
                # Travels with the run: the report's warnings and the nightly summary show it.
                self.info.warnings = [*self.info.warnings, FAILED_RUN_WARNING]
                log.warning("run %s: %s", self.info.run_id, FAILED_RUN_WARNING)
            try:
                write_run_info(self.dir, self.info)
            except OSError as exc:
                # run.json keeps its last good content: the run reads as incomplete, records intact.
                raise ResultsWriteError(
                    f"{self.dir / RUN_FILE}: cannot write the final status ({exc.strerror}); records written before are intact"
                ) from None


def compact(run_dir: Path) -> None:
    samples, _ = _read_jsonl(run_dir / SAMPLES_JSONL, "samples")
    criteria, _ = _read_jsonl(run_dir / CRITERIA_JSONL, "criteria")
    for rows, schema, name in ((samples, SAMPLES_SCHEMA, SAMPLES_PARQUET), (criteria, CRITERIA_SCHEMA, CRITERIA_PARQUET)):
        table = _table_from_rows(rows, schema)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        _atomic_write_bytes(run_dir / name, sink.getvalue().to_pybytes())


# ---------------------------------------------------------------- reading


def _read_jsonl(path: Path, kind: str = "", run: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The valid rows of a JSONL file, and one warning per problem kind (not per line: a file
    of 10,000 bad lines gives a short report). kind "samples"/"criteria" checks each row against
    the contract (results.schema.check_row); a bad line is skipped, never the file."""
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    if not path.exists():
        return rows, warnings
    with open(path, "rb") as fh:
        lines = fh.read().split(b"\n")
    last = len(lines) - 1
    invalid: list[str] = []
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            # Bounded: a 1 MiB line cap and a depth cap (20,000 nested brackets would raise RecursionError).
            if len(raw) > MAX_LINE_BYTES:
                raise ValueError("line too long")
            obj = parse_json(raw, "line", ValueError)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except ValueError:
            where = "last line (a killed writer?)" if i >= last - 1 else f"line {i + 1}"
            warnings.append(f"{path}: skipped unreadable {where}")
            continue
        if kind:
            row, problem = check_row(obj, kind, run or {})
            if row is None:
                invalid.append(f"line {i + 1}: {problem}")
                continue
            obj = row
        rows.append(obj)
    if len(warnings) > 3:
        warnings = warnings[:2] + [f"{path}: skipped {len(warnings) - 2} more unreadable lines"]
    if invalid:
        more = f" (and {len(invalid) - 3} more)" if len(invalid) > 3 else ""
        warnings.append(f"{path}: skipped {len(invalid)} line(s) that break the results contract: "
                        f"{'; '.join(invalid[:3])}{more}; the run's other {len(rows)} records are kept")
    return rows, warnings


def _table_from_rows(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    df = pd.DataFrame(rows)
    return _conform(df, schema)


def _conform(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """Cast the documented columns to their dtypes; unknown extra columns are kept."""
    for f in schema:
        if f.name not in df.columns:
            df[f.name] = None
    if "timestamp" in schema.names:
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, errors="coerce", format="ISO8601")
    if "labels" in schema.names:
        df["labels"] = df["labels"].map(
            lambda v: v if isinstance(v, str) else json.dumps(v if v is not None else {}, sort_keys=True)
        )
    for f in schema:
        if pa.types.is_floating(f.type) or pa.types.is_integer(f.type):
            df[f.name] = pd.to_numeric(df[f.name], errors="coerce")
    extras = [c for c in df.columns if c not in schema.names]
    ordered = df[list(schema.names) + extras]
    fields = list(schema) + [pa.field(c, pa.string()) for c in extras]
    for c in extras:
        ordered[c] = ordered[c].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v, default=str))
    return pa.Table.from_pandas(ordered, schema=pa.schema(fields), preserve_index=False, safe=False)


def _to_frame(table: pa.Table, schema: pa.Schema) -> pd.DataFrame:
    df = table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)
    for f in schema:
        if pa.types.is_string(f.type):
            df[f.name] = df[f.name].astype("string")
    if "repetition" in df:
        df["repetition"] = df["repetition"].fillna(0).astype("int64")
    if "value" in df:
        df["value"] = df["value"].astype("float64")
    return df


def empty_samples() -> pd.DataFrame:
    return _to_frame(SAMPLES_SCHEMA.empty_table(), SAMPLES_SCHEMA)


def empty_criteria() -> pd.DataFrame:
    return _to_frame(CRITERIA_SCHEMA.empty_table(), CRITERIA_SCHEMA)


@dataclass
class RunSet:
    samples: pd.DataFrame
    criteria: pd.DataFrame
    runs: list[RunInfo]
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # run folders that could not be read
    dirs: dict[str, Path] = field(default_factory=dict)  # run_id -> its folder (for per-run files: timelines)

    def runs_frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.to_json() for r in self.runs])


def find_run_dirs(paths: Iterable[Path | str]) -> list[Path]:
    """Each path is a run folder (has run.json or records) or a folder of run folders."""
    found: list[Path] = []
    for p in map(Path, paths):
        if _looks_like_run(p):
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(c for c in p.iterdir() if c.is_dir() and _looks_like_run(c)))
    return found


def _looks_like_run(p: Path) -> bool:
    return p.is_dir() and any((p / n).exists() for n in (RUN_FILE, SAMPLES_JSONL, SAMPLES_PARQUET))


# run.json fields a reader relies on, by type. Required ones missing or mistyped make the folder
# unreadable (skipped with a warning); optional ones mistyped are dropped so their default applies.
_RUN_REQUIRED = {"run_id": str, "platform": str, "cluster": str, "started": str}
_RUN_OPTIONAL = {
    "status": str, "finished": str, "okd_version": str, "kubernetes_version": str, "nodes": list, "hypervisor": dict,
    "suite_commit": str, "okdbench_version": str, "command_line": list, "hypervisor_platform": str, "insecure": bool,
    "warnings": list, "outcome": str,
}


def _sane_run_json(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    for key, kind in _RUN_REQUIRED.items():
        if not isinstance(data.get(key), kind) or not data[key]:
            raise ValueError(f"{path}: {key} is missing or not a {kind.__name__}")
    clean = dict(data)
    for key, kind in _RUN_OPTIONAL.items():
        if key in clean and clean[key] is not None and not isinstance(clean[key], kind):
            log.warning("%s: ignored %s (%s, expected %s)", path, key, type(clean[key]).__name__, kind.__name__)
            del clean[key]
    nodes = []
    for n in clean.get("nodes") or []:
        if isinstance(n, dict) and isinstance(n.get("role"), str) and isinstance(n.get("count"), int):
            nodes.append(n)
        else:
            log.warning("%s: ignored a malformed nodes entry", path)
    clean["nodes"] = nodes
    return clean


def read_run_info(run_dir: Path) -> RunInfo:
    path = run_dir / RUN_FILE
    if not path.exists():
        raise FileNotFoundError(path)
    data = read_json_file(path, "run.json", "a run.json", ValueError)
    if not isinstance(data, dict) or not data.get("run_id"):
        raise ValueError(f"{path}: not a run.json (no run_id)")
    info = RunInfo.from_json(_sane_run_json(path, data))
    if info.status not in FINAL_RUN_STATUSES:
        info.status = "incomplete"  # a run without a final status is reported as incomplete
    return info


def _read_records(run_dir: Path, parquet: str, jsonl: str, schema: pa.Schema,
                  info: RunInfo | None = None) -> tuple[pa.Table, list[str]]:
    kind = "samples" if schema is SAMPLES_SCHEMA else "criteria"
    warnings: list[str] = []
    pq_path = run_dir / parquet
    if pq_path.exists():
        # Column types, not rows: checking the footer keeps reading fast for good files.
        try:
            problem = parquet_type_problem(pq.read_schema(pq_path), schema)
            if problem is None:
                return pq.read_table(pq_path), []
        except (OSError, pa.ArrowException) as exc:
            if not (run_dir / jsonl).exists():
                raise  # nothing else holds these records: the folder is reported unreadable, as before
            problem = f"unreadable Parquet ({(str(exc).splitlines() or [type(exc).__name__])[0][:120]})"
        fallback = "its JSONL is read instead" if (run_dir / jsonl).exists() else "its records are skipped"
        warnings.append(f"{pq_path}: {problem}; {fallback}")
    identity = {"run_id": info.run_id, "platform": info.platform, "cluster": info.cluster} if info else {}
    rows, w = _read_jsonl(run_dir / jsonl, kind, identity)
    return _table_from_rows(rows, schema), warnings + w


def load_run(run_dir: Path) -> tuple[RunInfo, pa.Table, pa.Table, list[str]]:
    try:
        info = read_run_info(run_dir)
    except FileNotFoundError:
        raise ValueError(f"{run_dir}: no run.json") from None
    samples, w1 = _read_records(run_dir, SAMPLES_PARQUET, SAMPLES_JSONL, SAMPLES_SCHEMA, info)
    criteria, w2 = _read_records(run_dir, CRITERIA_PARQUET, CRITERIA_JSONL, CRITERIA_SCHEMA, info)
    return info, samples, criteria, w1 + w2


def _bulk_parquet(files: list[Path], schema: pa.Schema, categorical: bool = False,
                  footers: dict[Path, pa.Schema] | None = None) -> pa.Table | None:
    """Many Parquet files in one pyarrow call (several times faster than per file for hundreds of runs).

    Unknown extra columns are kept (their footers are read to find them). categorical=True reads
    string columns as dictionaries straight from Parquet. None when any file is unreadable: the
    caller then reads per folder, which pins the failure on the one corrupt folder.
    """
    if len(files) < 2:
        return None
    try:
        import pyarrow.dataset as ds

        extras: dict[str, pa.Field] = {}
        for f in files:
            for fld in (footers or {}).get(f) or pq.read_schema(f):
                if fld.name not in schema.names:
                    extras.setdefault(fld.name, pa.field(fld.name, pa.string()))
        schema = pa.schema(list(schema) + list(extras.values()))

        fmt: object = "parquet"
        if categorical:
            strings = [f.name for f in schema if pa.types.is_string(f.type)]
            fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=strings))
            schema = pa.schema(
                [pa.field(f.name, pa.dictionary(pa.int32(), pa.string())) if f.name in strings else f for f in schema]
            )
        return ds.dataset([str(f) for f in files], format=fmt, schema=schema).to_table()
    except (OSError, ValueError, pa.ArrowException):
        return None


def _parquet_fits(path: Path, schema: pa.Schema, footers: dict[Path, pa.Schema]) -> bool:
    """Exists with the contract's column types (footer only, kept in `footers` for the bulk read):
    a misfit is read per folder and flagged."""
    try:
        if not path.exists():
            return False
        footers[path] = pq.read_schema(path)
        return parquet_type_problem(footers[path], schema) is None
    except (OSError, pa.ArrowException):
        return False


def load_runs(paths: Iterable[Path | str], categorical: bool = False) -> RunSet:
    """Load run folders into DataFrames with the documented dtypes, plus run metadata.

    A folder that cannot be read at all is skipped with a warning, never an exception.
    categorical=True returns the string columns as pandas categoricals (same values, a fraction
    of the memory and much faster grouping on millions of samples).
    """
    infos: list[RunInfo] = []
    sample_tables: list[pa.Table] = []
    criteria_tables: list[pa.Table] = []
    warnings: list[str] = []
    skipped: list[str] = []

    def skip(run_dir: Path, exc: Exception) -> None:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        skipped.append(f"{run_dir}: {msg}")
        log.warning("skipped run folder %s: %s", run_dir, msg)

    readable: list[tuple[Path, RunInfo]] = []
    for run_dir in find_run_dirs(paths):
        try:
            readable.append((run_dir, read_run_info(run_dir)))
        except FileNotFoundError:
            skip(run_dir, ValueError(f"{run_dir}: no run.json"))
        except (ValueError, OSError) as exc:
            skip(run_dir, exc)
    # Fast path: compacted runs whose both Parquet files read in one call each.
    footers: dict[Path, pa.Schema] = {}
    compacted = [
        d for d, _ in readable
        if _parquet_fits(d / SAMPLES_PARQUET, SAMPLES_SCHEMA, footers)
        and _parquet_fits(d / CRITERIA_PARQUET, CRITERIA_SCHEMA, footers)
    ]
    bulk_s = _bulk_parquet([d / SAMPLES_PARQUET for d in compacted], SAMPLES_SCHEMA, categorical, footers)
    bulk_c = (
        _bulk_parquet([d / CRITERIA_PARQUET for d in compacted], CRITERIA_SCHEMA, categorical, footers)
        if bulk_s is not None
        else None
    )
    in_bulk = set(compacted) if bulk_s is not None and bulk_c is not None else set()
    if in_bulk:
        sample_tables.append(bulk_s)
        criteria_tables.append(bulk_c)
    for run_dir, info in readable:
        if run_dir in in_bulk:
            infos.append(info)
            continue
        try:
            s, w1 = _read_records(run_dir, SAMPLES_PARQUET, SAMPLES_JSONL, SAMPLES_SCHEMA, info)
            c, w2 = _read_records(run_dir, CRITERIA_PARQUET, CRITERIA_JSONL, CRITERIA_SCHEMA, info)
        except (ValueError, OSError, pa.ArrowException) as exc:
            skip(run_dir, exc)
            continue
        for msg in w1 + w2:
            log.warning("%s", msg)
        warnings.extend(w1 + w2)
        infos.append(info)
        sample_tables.append(s)
        criteria_tables.append(c)
    samples = _concat(sample_tables, SAMPLES_SCHEMA, categorical)
    criteria = _concat(criteria_tables, CRITERIA_SCHEMA, categorical)
    dirs = {info.run_id: d for d, info in readable}
    return RunSet(samples=samples, criteria=criteria, runs=infos, warnings=warnings, skipped=skipped,
                  dirs={i.run_id: dirs[i.run_id] for i in infos})


def _concat(tables: list[pa.Table], schema: pa.Schema, categorical: bool = False) -> pd.DataFrame:
    if not tables:
        return _to_frame(schema.empty_table(), schema)
    if categorical:
        import pyarrow.compute as pc

        # Per-folder tables read as plain strings: encode them like the bulk table.
        tables = [_dictionary_strings(t, schema, pc) for t in tables]
    table = pa.concat_tables(tables, promote_options="permissive")
    if categorical:
        df = table.to_pandas()
        if "repetition" in df:
            df["repetition"] = df["repetition"].fillna(0).astype("int64")
        if "value" in df:
            df["value"] = df["value"].astype("float64")
        return df
    return _to_frame(table, schema)


def _dictionary_strings(table: pa.Table, schema: pa.Schema, pc) -> pa.Table:
    for i, f in enumerate(table.schema):
        if f.name in schema.names and pa.types.is_string(f.type):
            table = table.set_column(i, f.name, pc.dictionary_encode(table.column(i)))
    return table


def run_json_path(run_dir: Path) -> Path:
    return run_dir / RUN_FILE


def now_iso() -> str:
    return iso(datetime.now(timezone.utc))
