"""Fixture `fake_cluster`: a scripted Kubernetes/OpenShift API server over real HTTPS.

    def test_x(fake_cluster):                # healthy OKD 4.8 cluster, TLS verified, bearer token
        fake_cluster.kubeconfig               # Path: CA + token, for --kubeconfig
        fake_cluster.at(1.0, lambda: fake_cluster.set_node_ready(name, False))
        fake_cluster.set_faults(error_ratio=0.1, reset_ratio=0.1, seed=3)
        fake_cluster.requests                 # request log (method, path, status, fault)

Parametrize indirectly for other states:
    @pytest.mark.parametrize("fake_cluster", ["plain"], indirect=True)   # no OpenShift APIs
    @pytest.mark.parametrize("fake_cluster", ["empty"], indirect=True)   # OpenShift APIs, no objects

`run_suites(fc, results_dir, *args)` runs `python -m pytest suites/ --platform=kvm --kubeconfig …`
in a subprocess, as a user would, and loads what it wrote.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from results.store import RunSet, load_runs
from tests.fakekube import FakeCluster
from tests.fakekube import scenarios
from tests.support._bounded_run import run_bounded

ROOT = Path(__file__).resolve().parents[2]
FAKEBIN = ROOT / "tests" / "fakebin"


@contextlib.contextmanager
def started(workdir: Path, kind: str = "okd") -> Iterator[FakeCluster]:
    if kind not in ("okd", "plain", "empty"):
        raise ValueError(f"fake cluster kind {kind!r}: use 'okd', 'plain' or 'empty'")
    fc = FakeCluster(workdir, openshift=kind != "plain").start()
    try:
        if kind == "okd":
            scenarios.healthy_okd(fc)
        elif kind == "plain":
            scenarios.plain_kubernetes(fc)
        yield fc
    finally:
        fc.stop()


@pytest.fixture
def fake_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    with started(tmp_path_factory.mktemp("fakekube"), getattr(request, "param", "okd")) as fc:
        yield fc


@dataclass
class SuitesRun:
    proc: subprocess.CompletedProcess
    runs: RunSet
    results_dir: Path

    @property
    def run_dir(self) -> Path:
        info = self.runs.runs[0]
        return Path(self.results_dir) / info.run_id

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr

    def criteria(self, name: str) -> pd.DataFrame:
        c = self.runs.criteria
        return c[c["criterion"] == name]

    def status(self, name: str) -> list[str]:
        return list(self.criteria(name)["status"])

    def detail(self, name: str) -> str:
        return " | ".join(self.criteria(name)["detail"])

    def samples(self, metric: str) -> pd.DataFrame:
        s = self.runs.samples
        out = s[s["metric"] == metric].copy()
        out["labels"] = out["labels"].map(json.loads)
        return out


def run_suites(fc: FakeCluster, results_dir: Path, *args: str, oc: bool = False,
               kubeconfig: Path | None = None) -> SuitesRun:
    targets = [] if any(a.startswith("suites/") for a in args) else ["suites/"]
    cmd = [sys.executable, "-m", "pytest", *targets, "--platform=kvm", "--kubeconfig", str(kubeconfig or fc.kubeconfig),
           "--results-dir", str(results_dir), "-p", "no:cacheprovider", "-q", *args]
    if fc.router is not None and "--ingress-address" not in args:
        cmd += ["--ingress-address", fc.ingress_address]
    env = dict(os.environ)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and not Path(p, "oc").exists()]
    env["PATH"] = os.pathsep.join(([str(FAKEBIN)] if oc else []) + path)
    proc = run_bounded(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return SuitesRun(proc=proc, runs=load_runs([results_dir]), results_dir=results_dir)
