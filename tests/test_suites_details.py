"""Criterion details name every object: 8 unhealthy operators and a cordoned master from real
captures, through a real `pytest suites/` session against the fake OKD API (must-gather on)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from results.store import load_runs
from suites.details import named
from suites.test_operators import problems_of
from tests.fakekube.objects import real
from tests.support.fakekube import FAKEBIN, started

ROOT = Path(__file__).resolve().parent.parent
OPERATORS = "clusteroperators_unavailable-machine-config_degraded-etcd_ocp-4.15.yaml"
CORDONED = "nodes_ready-master1-cordoned_ocp-4.20.yaml"


def test_named_shortens_reasons_never_names():
    bad = {co["metadata"]["name"]: problems_of(co) for co in real(OPERATORS)}
    bad = {k: v for k, v in bad.items() if v}
    assert len(bad) == 8
    for room in (1000, 400, 250, 120, 10):
        text = named(f"{len(bad)} of 33 operators unhealthy", bad, room)
        assert all(name in text for name in bad), (room, text)
        assert len(text) <= room or text.count(":") == 1  # over the room only as the bare list of names
    assert "(UnavailableReplicas)" in named("x", bad, 1000) and "(" not in named("x", bad, 300)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("details")
    with started(tmp_path_factory.mktemp("fk")) as fc:
        fc.load(OPERATORS)
        fc.load(CORDONED)
        kc = fc.write_kubeconfig(tmp / "kubeconfig")
        env = {**os.environ, "PATH": f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}"}
        proc = subprocess.run([sys.executable, "-m", "pytest", "suites/test_operators.py", "suites/test_nodes.py",
                               "--platform=kvm", "--kubeconfig", str(kc), "--results-dir", str(tmp / "results"),
                               "-p", "no:cacheprovider", "-q", "--wait-ready", "2", "--must-gather", "inspect"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    rs = load_runs([tmp / "results"])
    return proc, {r.criterion: r for r in rs.criteria.itertuples(index=False)}


def test_operators_detail_names_all_eight(session):
    proc, criteria = session
    op = criteria["operators"]
    assert op.status == "failed", proc.stdout[-2000:]
    unhealthy = sorted(n for n, p in ((c["metadata"]["name"], problems_of(c)) for c in real(OPERATORS)) if p)
    assert all(name in op.detail for name in unhealthy), op.detail
    assert "must-gather:" in op.detail  # the evidence path is kept too
    assert len(op.detail) <= 700


def test_cordoned_master_is_noted(session):
    _, criteria = session
    nodes = criteria["nodes-ready"]
    assert nodes.status == "passed"
    assert "cordoned (unschedulable)" in nodes.detail and "ci-op-pw3ghqzh-bb5c4-pdhfc-master-1" in nodes.detail
