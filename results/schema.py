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
        # One line, bounded: a criterion detail is read in a table cell.
        d["detail"] = one_line(self.detail)
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
