"""The results contract: the one seam between suites (writers) and reports (readers).

Everything that crosses it is defined here, typed. See DESIGN.md "Results contract".
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import pyarrow as pa

Better = Literal["lower", "higher"]
CriterionStatus = Literal["passed", "failed", "skipped", "error"]
RunStatus = Literal["running", "complete", "incomplete", "aborted"]

BETTER_VALUES = ("lower", "higher")
CRITERION_STATUSES = ("passed", "failed", "skipped", "error")
FINAL_RUN_STATUSES = ("complete", "incomplete", "aborted")
RunOutcome = Literal["ok", "failed"]
FAILED_RUN_WARNING = ("run failed: every criterion it checked ended in error (e.g. the cluster could not be reached); "
                      "it measured nothing about the platform")


def run_outcome(criteria: dict[str, int]) -> str:
    """'failed' when at least one criterion errored and none passed or failed; else 'ok'."""
    if criteria.get("error", 0) and not criteria.get("passed", 0) and not criteria.get("failed", 0):
        return "failed"
    return "ok"

RUN_FILE = "run.json"
SAMPLES_JSONL = "samples.jsonl"
CRITERIA_JSONL = "criteria.jsonl"
SAMPLES_PARQUET = "samples.parquet"
CRITERIA_PARQUET = "criteria.parquet"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Sample:
    """One measurement (PerfKitBenchmarker's Sample, plus who/where/when)."""

    run_id: str
    platform: str
    cluster: str
    suite: str
    metric: str
    value: float
    unit: str
    better: Better = "lower"
    repetition: int = 0
    timestamp: datetime = field(default_factory=utcnow)
    labels: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.better not in BETTER_VALUES:
            raise ValueError(f"better: {self.better!r} is not allowed; use 'lower' or 'higher'")
        if not isinstance(self.value, (int, float)) or isinstance(self.value, bool):
            raise ValueError(f"value of {self.metric}: {self.value!r} is not a number")
        if not self.metric:
            raise ValueError("metric: empty name; use a dotted name like build.duration")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["value"] = float(self.value)
        d["timestamp"] = iso(self.timestamp)
        d["labels"] = json.dumps(self.labels, sort_keys=True, default=str)
        return d


@dataclass(frozen=True)
class CriterionResult:
    """The outcome of one POC acceptance criterion check."""

    run_id: str
    platform: str
    criterion: str
    status: CriterionStatus
    detail: str = ""
    duration_s: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in CRITERION_STATUSES:
            raise ValueError(f"status: {self.status!r} is not one of {', '.join(CRITERION_STATUSES)}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        # One line, bounded: a criterion detail is read in a table cell. The bound is a backstop:
        # suites shorten reasons to ~400 characters themselves and keep every name (suites/details.py).
        d["detail"] = one_line(self.detail, DETAIL_LIMIT)
        d["duration_s"] = float(self.duration_s) if math.isfinite(self.duration_s) else 0.0
        return d


@dataclass
class NodeGroupInfo:
    role: str
    count: int
    vcpu: int | None = None
    memory_mib: int | None = None
    disk_gib: int | None = None


@dataclass
class RunInfo:
    """run.json. Unknown keys read from disk are kept in `extra`."""

    run_id: str
    platform: str
    cluster: str
    started: str
    status: RunStatus = "running"
    finished: str | None = None
    okd_version: str | None = None
    kubernetes_version: str | None = None
    nodes: list[NodeGroupInfo] = field(default_factory=list)
    hypervisor: dict[str, Any] = field(default_factory=dict)
    suite_commit: str | None = None
    okdbench_version: str | None = None
    command_line: list[str] = field(default_factory=list)
    hypervisor_platform: str | None = None  # kvm | vsphere: what --label names
    insecure: bool = False
    warnings: list[str] = field(default_factory=list)
    # None while running; "failed" when every criterion checked errored (the cluster was not reachable,
    # say): status stays complete|incomplete|aborted (how the run ended), outcome says it measured nothing.
    outcome: RunOutcome | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        return {**extra, **d}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunInfo":
        known = set(cls.__dataclass_fields__) - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["nodes"] = [
            NodeGroupInfo(**{k: v for k, v in n.items() if k in NodeGroupInfo.__dataclass_fields__})
            for n in (data.get("nodes") or [])
            if isinstance(n, dict)
        ]
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs, extra=extra)


DETAIL_LIMIT = 2000  # a criterion detail: ~60 node names fit, a paragraph does not


def one_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# Arrow schemas: the documented dtypes, shared by the writer (Parquet) and the reader.
SAMPLES_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("platform", pa.string()),
        ("cluster", pa.string()),
        ("suite", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("unit", pa.string()),
        ("better", pa.string()),
        ("repetition", pa.int64()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("labels", pa.string()),
    ]
)

CRITERIA_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("platform", pa.string()),
        ("criterion", pa.string()),
        ("status", pa.string()),
        ("detail", pa.string()),
        ("duration_s", pa.float64()),
    ]
)

SAMPLE_COLUMNS = SAMPLES_SCHEMA.names
CRITERION_COLUMNS = CRITERIA_SCHEMA.names


# ---------------------------------------------------------------- checking what a reader is given
# A results folder may come from another team, another version, or a hand edit. Each JSONL line and
# each Parquet file's column types are checked against the contract; what does not fit is skipped
# with a warning, and every line that does fit is kept.

MAX_ABS_VALUE = 1e300  # beyond this a value is not a measurement (and a 400-digit int overflows float)
MAX_REPETITION = 2**31 - 1
_IDENTITY = ("run_id", "platform", "cluster")  # missing or null: taken from run.json


def _number_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"is {_kind(value)}, not a number"
    if isinstance(value, int):
        return None if abs(value) <= MAX_ABS_VALUE else f"is out of range (at most {MAX_ABS_VALUE:g} in magnitude)"
    if math.isnan(value):
        return None  # a measurement that could not be made; readers treat it as missing, as before
    if not math.isfinite(value) or abs(value) > MAX_ABS_VALUE:
        return f"is {value!r}, not a finite number"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    name = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(value))
    return name or ("a number" if isinstance(value, (int, float)) else f"a {type(value).__name__}")


def check_row(row: dict[str, Any], kind: str, run: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(the row made conformant, "") or (None, "field: why") for one samples/criteria JSONL line.

    kind: "samples" or "criteria". run: run.json's identity fields, filling missing ones.
    """
    row = dict(row)
    for key in _IDENTITY:
        if key in run and row.get(key) is None and (kind == "samples" or key != "cluster"):
            row[key] = run[key]
    strings = ("run_id", "platform", "cluster", "suite", "metric", "unit", "better") if kind == "samples" \
        else ("run_id", "platform", "criterion", "status", "detail")
    for key in strings:
        value = row.get(key)
        if value is not None and not isinstance(value, str):
            return None, f"{key} is {_kind(value)}, not a string"
    if kind == "samples":
        if not row.get("metric"):
            return None, "metric is missing"
        problem = _number_problem(row.get("value"))
        if problem:
            return None, f"value {problem}"
        row["value"] = float(row["value"])
        if row.get("better") not in (None, *BETTER_VALUES):
            return None, f"better is {one_line(repr(row['better']), 40)}, not lower or higher"
        rep = row.get("repetition")
        if rep is not None and (isinstance(rep, bool) or not isinstance(rep, int) or not 0 <= rep <= MAX_REPETITION):
            return None, f"repetition is {one_line(repr(rep), 40)}, not a whole number from 0"
        ts = row.get("timestamp")
        if ts is not None and not isinstance(ts, str):
            return None, f"timestamp is {_kind(ts)}, not an ISO 8601 string"
        labels = row.get("labels")
        if labels is not None and not isinstance(labels, (str, dict)):
            return None, f"labels is {_kind(labels)}, not an object"
    else:
        if not row.get("criterion"):
            return None, "criterion is missing"
        if row.get("status") not in CRITERION_STATUSES:
            return None, f"status is {one_line(repr(row.get('status')), 40)}, not one of {', '.join(CRITERION_STATUSES)}"
        duration = row.get("duration_s")
        if duration is not None:
            problem = _number_problem(duration)
            if problem:
                return None, f"duration_s {problem}"
            row["duration_s"] = float(duration)
    return row, ""


def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    if pa.types.is_dictionary(actual):
        actual = actual.value_type
    if actual == pa.null():
        return True  # an all-null column reads as the expected type's nulls
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_floating(expected):
        return pa.types.is_floating(actual) or pa.types.is_integer(actual)
    if pa.types.is_integer(expected):
        return pa.types.is_integer(actual)
    if pa.types.is_timestamp(expected):
        return pa.types.is_timestamp(actual)
    return actual == expected


def parquet_type_problem(actual: pa.Schema, expected: pa.Schema) -> str | None:
    """Why a Parquet file's columns do not fit the contract (e.g. "value is string, not double"), or None."""
    for f in expected:
        i = actual.get_field_index(f.name)
        if i >= 0 and not _compatible(actual.field(i).type, f.type):
            return f"column {f.name} is {actual.field(i).type}, not {f.type}"
    return None
