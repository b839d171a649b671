"""nightly.yaml: what to run each night, validated; every error is one line naming the field.

Relative paths are resolved against the directory of the config file, so a config can be
moved together with the specs and kubeconfigs it names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from plumbing.errors import UserError
from plumbing.redact import register_secret
from plumbing.validation import one_line_error, read_yaml, short, yaml_path


class ConfigError(UserError):
    """nightly.yaml is invalid. str() is one line: field path, bad value, what is allowed."""


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


MAX_DURATION_S = 30 * 86400.0  # 30d: longer than any night; a bigger value is a typo


def parse_duration(value: Any) -> float:
    """'10m' -> 600.0 seconds; bare numbers are seconds. At most 30 days."""
    seconds: float | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int):
        seconds = float(value) if 0 <= value <= MAX_DURATION_S else float("inf")
    elif isinstance(value, float) and value >= 0 and value == value:
        seconds = value
    elif isinstance(value, str) and len(value) <= 40:
        m = _DURATION_RE.match(value)
        if m:
            seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if seconds is None:
        raise ValueError(f"{short(repr(value), 40)} is not a duration; use e.g. 30s, 10m, 4h")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"{short(repr(value), 40)} is out of range; use at most 30d")
    return seconds


def _fmt_duration(seconds: float) -> str:
    return f"{seconds:g}s"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_LABEL_RE = r"^[a-z0-9]([-a-z0-9_.]{0,38}[a-z0-9])?$"
_SUITE_RE = re.compile(r"^[a-z0-9_]{1,60}$")


class PlatformRun(_Model):
    """One platform of the nightly comparison: where the cluster comes from and what to run."""

    label: str = Field(pattern=_LABEL_RE)
    platform: Literal["kvm", "vsphere"]
    spec: Path | None = None  # provision a fresh cluster from this spec each night ...
    kubeconfig: Path | None = None  # ... or reuse an existing cluster (with spec too: the spec describes it)
    keep_cluster: bool = False  # with spec: keep the provisioned cluster after the run
    suites: list[str] = Field(default_factory=list)  # names under suites/ (test_<name>.py); empty: all
    repeat: int = Field(1, ge=1, le=1000)
    soak: float = 0.0  # seconds
    timeout: float = 6 * 3600.0  # seconds; the whole pytest session of this platform
    insecure: bool = False
    pytest_args: list[str] = Field(default_factory=list)

    _v_durations = field_validator("soak", "timeout", mode="before")(lambda v: parse_duration(v))

    @field_validator("suites")
    @classmethod
    def _v_suites(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _SUITE_RE.match(name):
                raise ValueError(f"{name!r} is not a suite name; use the file name under suites/ without test_ and .py, e.g. builds")
        return v

    @field_validator("timeout")
    @classmethod
    def _v_timeout(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"{v!r} is not allowed; the timeout must be positive, e.g. 4h")
        return v

    @model_validator(mode="after")
    def _one_cluster_source(self) -> "PlatformRun":
        if self.spec is None and self.kubeconfig is None:
            raise ValueError("give spec (provision a fresh cluster) or kubeconfig (reuse a running one)")
        return self


class Retention(_Model):
    keep_jsonl_runs: int = Field(14, ge=1, le=100000)


class Notify(_Model):
    webhook_url: str
    timeout: float = 10.0
    retries: int = Field(3, ge=0, le=20)
    backoff: float = 2.0  # seconds before the first retry, doubled each time
    ca_bundle: Path | None = None

    _v_durations = field_validator("timeout", "backoff", mode="before")(lambda v: parse_duration(v))

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _v_url(cls, v: Any) -> Any:
        # A webhook URL is a credential (Slack/Teams put the token in the path): masked wherever
        # okdbench writes text from now on, and never echoed in an error.
        if isinstance(v, str):
            register_secret(v)
            if not re.match(r"^https?://[^\s/]+", v):
                scheme = v.split("://", 1)[0] if "://" in v else ""
                hint = f" (scheme {short(scheme, 12)!r})" if scheme and len(scheme) <= 12 else ""
                raise ValueError(f"not an http(s) URL{hint}; use e.g. https://hooks.example.com/okdbench")
        return v

    @field_validator("timeout")
    @classmethod
    def _v_timeout(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be positive, e.g. 10s")
        return v


class NightlyConfig(_Model):
    results_dir: Path = Path("results")
    reports_dir: Path = Path("reports/out")
    logs_dir: Path = Path("logs")
    report_name: str = Field("nightly", pattern=r"^[A-Za-z0-9_.-]{1,80}$")
    lang: Literal["en", "fr"] = "en"  # language of the nightly report (okdbench report --lang)
    # Metrics named in advance as the comparison's question (okdbench report --primary).
    primary: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=20)
    lock_file: Path | None = None  # default: <results_dir>/.okdbench-nightly.lock
    # The checkout whose suites/ to run (with its conftest.py); default: this okdbench installation.
    suites_root: Path | None = None
    baseline: str | None = None  # label; default: the first platform
    candidate: str | None = None  # label; default: the second platform
    costs: Path | None = None
    ack: Path | None = None
    retention: Retention = Retention()
    notify: Notify | None = None
    # A comparison needs two platform runs (baseline, candidate); `--only` runs a subset on a given night.
    platforms: list[PlatformRun] = Field(min_length=2)
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> "NightlyConfig":
        labels = [p.label for p in self.platforms]
        for i, label in enumerate(labels):
            if labels.index(label) != i:
                raise ValueError(f"platforms[{i}].label: {label!r} is used twice; give each platform run its own label")
        for name in ("baseline", "candidate"):
            value = getattr(self, name)
            if value is not None and value not in labels:
                raise ValueError(f"{name}: {value!r} is not a platform label; use one of {', '.join(labels)}")
        return self

    @property
    def lock_path(self) -> Path:
        return self.lock_file or self.results_dir / ".okdbench-nightly.lock"

    def comparison(self) -> tuple[str | None, str | None]:
        labels = [p.label for p in self.platforms]
        baseline = self.baseline or labels[0]
        candidate = self.candidate or next((lbl for lbl in labels if lbl != baseline), None)
        return baseline, candidate


def _format_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    if err["type"] == "too_short" and yaml_path(err["loc"]) == "platforms":
        return "platforms: a nightly compares two platform runs; list a baseline and a candidate (see examples/nightly.yaml)"
    return one_line_error(exc)


def parse_config(data: Any, source: Path | None = None) -> NightlyConfig:
    where = f"{source}: " if source else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}the nightly config must be a YAML mapping with at least 'platforms:'; see examples/nightly.yaml")
    try:
        cfg = NightlyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(where + _format_error(exc)) from None
    except (ValueError, TypeError, OverflowError) as exc:  # a validator tripped on a value pydantic let through
        raise ConfigError(f"{where}invalid value: {short(exc, 200)}") from None
    return _resolve(cfg, source)


def _resolve(cfg: NightlyConfig, source: Path | None) -> NightlyConfig:
    base = source.parent if source else Path.cwd()

    def r(p: Path | None) -> Path | None:
        if p is None:
            return None
        p = p.expanduser()
        return p if p.is_absolute() else (base / p)

    platforms = [
        p.model_copy(update={"spec": r(p.spec), "kubeconfig": r(p.kubeconfig)}) for p in cfg.platforms
    ]
    notify = cfg.notify.model_copy(update={"ca_bundle": r(cfg.notify.ca_bundle)}) if cfg.notify else None
    return cfg.model_copy(
        update={
            "results_dir": r(cfg.results_dir),
            "reports_dir": r(cfg.reports_dir),
            "logs_dir": r(cfg.logs_dir),
            "lock_file": r(cfg.lock_file),
            "suites_root": r(cfg.suites_root),
            "costs": r(cfg.costs),
            "ack": r(cfg.ack),
            "platforms": platforms,
            "notify": notify,
            "source": source,
        }
    )


def load_config(path: str | Path) -> NightlyConfig:
    path = Path(path)
    data = read_yaml(path, "--config", "a nightly.yaml file (see examples/nightly.yaml)", ConfigError)
    return parse_config(data, source=path)
