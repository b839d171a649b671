"""Corrupted results files (1,000 generated run folders): load_runs skips what it cannot read with a
one-line warning and never raises; what it returns has the documented dtypes."""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from results.schema import SAMPLES_SCHEMA
from results.store import load_runs
from tests.test_properties_inputs import mutated, values

RUN = {"run_id": "r1", "platform": "kvm", "cluster": "c", "started": "2026-01-01T01:00:00Z", "status": "complete",
       "nodes": [{"role": "worker", "count": 2, "vcpu": 4}], "hypervisor": {"qemu": "8.2"}, "insecure": False}
SAMPLE = {"run_id": "r1", "platform": "kvm", "cluster": "c", "suite": "builds", "metric": "build.duration", "value": 12.5,
          "unit": "s", "better": "lower", "repetition": 0, "timestamp": "2026-01-01T01:02:03Z", "labels": "{\"node\": \"w0\"}"}
CRITERION = {"run_id": "r1", "platform": "kvm", "criterion": "builds", "status": "passed", "detail": "", "duration_s": 1.5}


def _valid_parquet() -> bytes:
    df = pd.DataFrame([SAMPLE] * 3)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(df, schema=SAMPLES_SCHEMA, preserve_index=False), sink)
    return sink.getvalue().to_pybytes()


VALID_PARQUET = _valid_parquet()

junk_bytes = st.binary(max_size=120)
json_text = st.one_of(
    mutated(RUN).map(lambda d: json.dumps(d, default=str)),
    values.map(lambda v: json.dumps(v, default=str)),
    st.text(max_size=80),
)


def _line(base):
    return st.one_of(
        st.just(json.dumps(base)),
        mutated(base).map(lambda d: json.dumps(d, default=str)),
        st.text(max_size=60).filter(lambda t: "\n" not in t),
    )


folders = st.fixed_dictionaries(
    {
        # Mostly a valid run.json, so the records files behind it get read and fuzzed too.
        "run": st.one_of(st.just(json.dumps(RUN)), st.just(json.dumps(dict(RUN, status="running"))), st.none(), json_text, junk_bytes),
        "samples": st.lists(_line(SAMPLE), max_size=6),
        "criteria": st.lists(_line(CRITERION), max_size=4),
        "torn": st.booleans(),
        "parquet": st.one_of(st.none(), st.just(VALID_PARQUET), st.integers(0, len(VALID_PARQUET) - 1).map(lambda n: VALID_PARQUET[:n]),
                             junk_bytes),
    }
)

_counter = itertools.count()
_tmp = tempfile.TemporaryDirectory(prefix="okdbench-prop-results-")


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(folders)
def test_load_runs_over_corrupted_folders(f):
    root = Path(_tmp.name) / str(next(_counter))
    run = root / "run-x"
    run.mkdir(parents=True)
    if f["run"] is not None:
        (run / "run.json").write_bytes(f["run"] if isinstance(f["run"], bytes) else f["run"].encode("utf-8", "surrogateescape"))
    samples = "\n".join(f["samples"]) + ("\n" if f["samples"] else "")
    if f["torn"] and samples:
        samples = samples[: max(1, len(samples) - 7)]  # a writer killed mid-line
    (run / "samples.jsonl").write_text(samples, encoding="utf-8", errors="surrogateescape")
    (run / "criteria.jsonl").write_text("\n".join(f["criteria"]), encoding="utf-8", errors="surrogateescape")
    if f["parquet"] is not None:
        (run / "samples.parquet").write_bytes(f["parquet"])
    before = {p.name: p.read_bytes() for p in run.iterdir()}

    rs = load_runs([root])

    assert len(rs.runs) + len(rs.skipped) == 1
    for msg in rs.warnings + rs.skipped:
        assert "\n" not in msg and "Traceback" not in msg
    assert rs.samples["value"].dtype == "float64"
    assert rs.samples["repetition"].dtype == "int64"
    assert str(rs.samples["timestamp"].dtype).startswith("datetime64")
    for col in ("run_id", "platform", "metric", "unit", "better", "labels"):
        assert str(rs.samples[col].dtype) == "string", col
    assert rs.criteria["duration_s"].dtype == "float64"
    for info in rs.runs:
        assert isinstance(info.run_id, str) and info.run_id
        assert info.status in ("complete", "incomplete", "aborted")
    # Reading never writes: the folder is byte for byte what it was.
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


# ------------------------------------------------------------------ damaged folders from elsewhere: good lines kept

WRONG = st.one_of(
    st.none(), st.integers(min_value=-(10**400), max_value=10**400), st.just(10**400), st.floats(), st.booleans(),
    st.lists(st.one_of(st.integers(), st.lists(st.integers(), max_size=2)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2), st.text(max_size=10),
)


@st.composite
def damaged_run(draw):
    """A run folder with n good sample lines and some bad ones (a field with a wrong type or out
    of range, a nested array, a line that is not an object), in any order; optionally a Parquet
    file whose columns have the wrong types."""
    n_good = draw(st.integers(1, 8))
    good = [dict(SAMPLE, value=float(i), repetition=i) for i in range(n_good)]
    bad = []
    for _ in range(draw(st.integers(1, 4))):
        line = dict(SAMPLE)
        key = draw(st.sampled_from(["metric", "platform", "value", "repetition", "better", "labels", "timestamp", "suite"]))
        line[key] = draw(WRONG)
        bad.append(json.dumps(line, default=str) if draw(st.integers(0, 9)) else draw(st.sampled_from(["[[1,[2]]]", "123", '"x"', "[" * 50 + "]" * 50])))
    order = draw(st.permutations([json.dumps(g) for g in good] + bad))
    parquet = draw(st.sampled_from([None, "value-as-text", "repetition-as-text", "platform-as-int"]))
    return n_good, order, parquet


def _bad_parquet(kind: str) -> bytes:
    df = pd.DataFrame([SAMPLE] * 2)
    col = {"value-as-text": "value", "repetition-as-text": "repetition", "platform-as-int": "platform"}[kind]
    df[col] = ["12.5", "x"] if col != "platform" else [1, 2]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), sink)
    return sink.getvalue().to_pybytes()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(damaged_run())
def test_damaged_lines_are_flagged_and_good_samples_kept(case):
    n_good, lines, parquet = case
    root = Path(_tmp.name) / f"d{next(_counter)}"
    run = root / "r1"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps(RUN))
    (run / "samples.jsonl").write_text("\n".join(lines) + "\n")
    if parquet:
        (run / "samples.parquet").write_bytes(_bad_parquet(parquet))
    rs = load_runs([root])
    assert len(rs.runs) == 1 and not rs.skipped
    # Every good sample is kept (the bad lines that happen to be valid, e.g. labels null, too).
    assert len(rs.samples) >= n_good
    assert set(range(n_good)) <= set(rs.samples["repetition"])
    assert rs.samples["value"].dtype == "float64" and rs.samples["value"].abs().max() <= 1e300
    assert rs.samples["platform"].isna().sum() == 0
    if len(rs.samples) < len(lines) or parquet:
        assert rs.warnings, "a skipped line or a misfit Parquet must be flagged"
    for w in rs.warnings:
        assert "\n" not in w and len(w) < 1000
