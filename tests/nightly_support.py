"""Helpers for the nightly/fault tests: a tiny suites checkout and nightly configs in tmp_path.

The tiny suites use the real okdbench plugin (record, criterion, --repeat) but need no
cluster, so a nightly's process boundary, exit codes and files are exercised in seconds.
Behaviour is steered per platform label through environment variables.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from results.schema import CriterionResult, RunInfo, Sample, iso
from results.store import RunWriter

SUITE = '''
import json, os, time
import pytest


@pytest.mark.criterion("alpha")
def test_alpha(okdbench_config):
    failing = os.environ.get("NIGHTLY_FAIL", "").split(",")
    assert okdbench_config.label not in failing, f"alpha failed on {okdbench_config.label}"


@pytest.mark.benchmark
def test_speed(record, okdbench_config):
    label = okdbench_config.label
    base = float(os.environ.get("NIGHTLY_VALUE_" + label.upper().replace("-", "_"), "10"))
    for i in range(3):
        record("demo.duration", base + 0.01 * i, "s", node="n0")


def test_stream(record, okdbench_config):
    """Records until killed when NIGHTLY_STREAM is set: the SIGKILL trials."""
    side = os.environ.get("NIGHTLY_STREAM")
    if not side:
        pytest.skip("no NIGHTLY_STREAM")
    with open(side + ".pid", "w") as fh:
        fh.write(str(os.getpid()))
    n = 0
    while n < 100000:
        record("stream.value", float(n), "count")
        # Only after record returned: what the test asserts is on disk.
        with open(side, "a") as fh:
            fh.write(f"{n}\\n")
            fh.flush()
            os.fsync(fh.fileno())
        n += 1
        time.sleep(0.002)
'''

CONFTEST = 'pytest_plugins = ["okdbench.plugin"]\n'

SPEC = {
    "name": "nightly-test",
    "base_domain": "example.test",
    "platform": "kvm",
    "okd": {"guest": "testguest"},
    "network": {"machine_cidr": "198.18.10.0/24"},
    "nodes": [{"role": "worker", "count": 1, "vcpu": 1, "memory": "256MiB", "disk": "1GiB"}],
    "kvm": {},
}


def make_suites_root(root: Path) -> Path:
    (root / "suites").mkdir(parents=True, exist_ok=True)
    (root / "suites" / "test_demo.py").write_text(SUITE)
    (root / "conftest.py").write_text(CONFTEST)
    return root


def write_spec(path: Path, platform: str = "kvm", **over: Any) -> Path:
    spec = dict(SPEC, platform=platform, **over)
    if platform == "vsphere":
        spec.pop("kvm", None)
        spec["vsphere"] = {"host": "127.0.0.1", "datacenter": "DC0", "cluster": "C0", "datastore": "LocalDS_0",
                           "network": "VM Network", "template": "tmpl"}
    path.write_text(yaml.safe_dump(spec))
    return path


def write_config(tmp: Path, **over: Any) -> Path:
    """A nightly.yaml with two platforms (vsphere baseline, kvm candidate), both from testguest specs."""
    suites_root = make_suites_root(tmp / "checkout")
    write_spec(tmp / "kvm.yaml", "kvm")
    write_spec(tmp / "vsphere.yaml", "vsphere")
    cfg: dict[str, Any] = {
        "results_dir": "results",
        "reports_dir": "reports",
        "logs_dir": "logs",
        "suites_root": str(suites_root),
        "baseline": "vsphere",
        "candidate": "kvm",
        "platforms": [
            {"label": "vsphere", "platform": "vsphere", "spec": "vsphere.yaml", "suites": ["demo"], "timeout": "5m"},
            {"label": "kvm", "platform": "kvm", "spec": "kvm.yaml", "suites": ["demo"], "timeout": "5m"},
        ],
        "retention": {"keep_jsonl_runs": 50},
    }
    for key, value in over.items():
        cfg[key] = value
    path = tmp / "nightly.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def seed_history(results: Path, nights: int, values: dict[str, list[float]], start: datetime | None = None) -> list[str]:
    """Write finished runs, one per night and platform, with the given per-night demo.duration level."""
    start = start or datetime(2026, 1, 1, 1, 0, tzinfo=timezone.utc)
    ids = []
    for night in range(nights):
        day = start + timedelta(days=night)
        for label, levels in values.items():
            run_id = f"{day:%Y%m%dT%H%M%SZ}-{label}"
            info = RunInfo(run_id=run_id, platform=label, cluster="seed", started=iso(day),
                           hypervisor_platform=label)
            w = RunWriter(results, info)
            for i in range(3):
                w.record_sample(Sample(run_id=run_id, platform=label, cluster="seed", suite="demo",
                                       metric="demo.duration", value=levels[night] + 0.01 * i, unit="s",
                                       timestamp=day, labels={"node": "n0"}))
            w.record_criterion(CriterionResult(run_id=run_id, platform=label, criterion="alpha", status="passed"))
            w.finish("complete")
            ids.append(run_id)
    return ids


def read_summary(tmp: Path) -> dict[str, Any]:
    return json.loads((tmp / "reports" / "summary.json").read_text())
