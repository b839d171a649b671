"""Malformed input, 1,000 generated cases per reader: a one-line error naming the problem, or a
skipped file with a warning — never a traceback, never an unexpected exception."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plumbing.errors import UserError
from okdbench.nightly.config import ConfigError, load_config, parse_config
from provision.spec import SpecError, load_spec, parse_spec
from reports.costs import load_costs, parse_costs

SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["16GiB", "0", "-1", "1e309", "198.18.0.0/16", "198.18.0.0/30", "198.18.0.4/32", "198.18.0.0/29", "198.18.0.7", "kvm", "vsphere", "master", "10m", "x" * 300, "\n\n", "${X}"]),
)
values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=12), c, max_size=4)),
                      max_leaves=5)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated(draw, base: dict) -> Any:
    """A valid document with 1-3 random mutations: a value replaced, a key deleted or added."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        if not path:
            if draw(st.booleans()):
                doc = draw(values)
            continue
        parent = doc
        try:
            for p in path[:-1]:
                parent = parent[p]
        except (KeyError, IndexError, TypeError):
            continue
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        key = path[-1]
        if action == "replace":
            parent[key] = draw(values)
        elif action == "delete" and isinstance(parent, dict):
            parent.pop(key, None)
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
    return doc


def assert_one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text, repr(text)
    assert len(text) < 1000


# ------------------------------------------------------------------ cluster spec

SPEC = {
    "name": "okd1", "base_domain": "example.test", "platform": "kvm",
    "okd": {"version": "4.15", "guest": "fcos"},
    "network": {"machine_cidr": "198.18.0.0/24", "api_vip": "198.18.0.5", "ingress_vip": "198.18.0.6"},
    "nodes": [
        {"role": "bootstrap", "count": 1, "vcpu": 4, "memory": "16GiB", "disk": "120GiB"},
        {"role": "master", "count": 3, "vcpu": 4, "memory": "16GiB", "disk": "120GiB", "mac_prefix": "52:54:00"},
        {"role": "worker", "count": 2, "vcpu": 4, "memory": "8GiB", "disk": "120GiB"},
    ],
    "kvm": {"uri": "qemu:///system", "tuning": {"disk_cache": "none"}},
}


def _spec_ok_or_one_line(data: Any) -> None:
    try:
        spec = parse_spec(data)
    except SpecError as exc:
        assert_one_line(exc)
        return
    # A spec that validates must be usable: every machine gets a MAC and an IP.
    try:
        machines = spec.machines()
    except SpecError as exc:
        assert_one_line(exc)
        return
    assert len({m.mac for m in machines}) == len(machines)
    assert len({m.ip for m in machines}) == len(machines)


@SETTINGS
@given(mutated(SPEC))
def test_spec_mutations(data):
    _spec_ok_or_one_line(data)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(st.text(max_size=200))
def test_spec_file_garbage(text):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "spec.yaml"
        p.write_text(text)
        try:
            load_spec(p)
        except SpecError as exc:
            assert_one_line(exc)


# ------------------------------------------------------------------ nightly config

NIGHTLY = {
    "results_dir": "results", "reports_dir": "reports/out", "baseline": "vsphere", "candidate": "kvm",
    "platforms": [
        {"label": "vsphere", "platform": "vsphere", "kubeconfig": "vs.kubeconfig", "suites": ["builds"], "repeat": 3, "soak": "10m"},
        {"label": "kvm", "platform": "kvm", "spec": "kvm.yaml", "repeat": 3, "timeout": "4h"},
    ],
    "retention": {"keep_jsonl_runs": 14},
    "notify": {"webhook_url": "https://hooks.example.com/x", "timeout": "10s", "retries": 3},
}


@SETTINGS
@given(mutated(NIGHTLY))
def test_nightly_config_mutations(data):
    try:
        cfg = parse_config(data)
    except ConfigError as exc:
        assert_one_line(exc)
        return
    cfg.comparison()
    assert all(p.timeout > 0 and p.soak >= 0 for p in cfg.platforms)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_nightly_config_file_garbage(text):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "nightly.yaml"
        p.write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            load_config(p)
        except ConfigError as exc:
            assert_one_line(exc)


# ------------------------------------------------------------------ costs file

COSTS = {
    "currency": "EUR", "years": 3, "example": True,
    "platforms": {
        "vsphere": {"hosts": 4, "cores_per_host": 32, "licence_per_core_per_year": 100, "support_per_year": 5000},
        "kvm": {"hosts": 4, "cores_per_host": 32, "support_per_year": 2000, "admin_fte": 0.5, "fte_cost_per_year": 90000},
    },
}


@SETTINGS
@given(mutated(COSTS))
def test_costs_mutations(data):
    try:
        table = parse_costs(data)
    except UserError as exc:
        assert_one_line(exc)
        return
    assert set(table.totals) == set(str(p) for p in data["platforms"])


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(st.text(max_size=200))
def test_costs_file_garbage(text):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "costs.yaml"
        p.write_text(text)
        try:
            load_costs(p)
        except UserError as exc:
            assert_one_line(exc)


@SETTINGS
@given(
    prefix=st.integers(8, 32),
    counts=st.tuples(st.integers(0, 2), st.integers(0, 5), st.integers(0, 100)),
    explicit=st.lists(st.integers(0, 300), max_size=6),
    mac_prefix=st.sampled_from([None, "52:54:00", "52:54:00:ab", "52:54:00:ab:cd", "00:50:56"]),
)
def test_spec_network_capacity_and_addresses(prefix, counts, explicit, mac_prefix):
    """Small networks, many nodes, explicit addresses that collide: a one-line error or unique IPs and MACs."""
    data = copy.deepcopy(SPEC)
    data["network"] = {"machine_cidr": f"198.18.0.0/{max(prefix, 15)}" if prefix < 15 else f"198.18.0.0/{prefix}"}
    for group, count in zip(data["nodes"], counts):
        group["count"] = count
        group.pop("mac_prefix", None)
        if mac_prefix:
            group["mac_prefix"] = mac_prefix
    if explicit:
        data["nodes"][1]["ips"] = [f"198.18.{n // 256}.{n % 256}" for n in explicit]
    _spec_ok_or_one_line(data)
