"""`pytest suites/` against plain Kubernetes (no OpenShift APIs): OpenShift-only criteria skip with
a clear one-line reason; the rest still runs and measures."""

from __future__ import annotations

import pytest

from suites.kube import NOT_OPENSHIFT
from tests.support.fakekube import run_suites, started

OPENSHIFT_ONLY = ["install", "operators", "etcd", "machine-config", "ingress", "registry", "builds"]
PORTABLE = ["nodes-ready", "csr", "pod-startup", "storage", "network", "api", "stability"]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    with started(tmp_path_factory.mktemp("fake-plain"), "plain") as fc:
        yield fc, run_suites(fc, tmp_path_factory.mktemp("results"), "--soak", "1s", "--builds", "1", "--pods", "3",
                             "--api-calls", "3", "--wait-ready", "5", "--workload-timeout", "30")


def test_exit_code(plain):
    _, run = plain
    assert run.proc.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output


@pytest.mark.parametrize("criterion", OPENSHIFT_ONLY)
def test_openshift_only_criteria_skip_with_reason(plain, criterion):
    _, run = plain
    rows = run.criteria(criterion)
    assert len(rows) >= 1
    assert set(rows["status"]) == {"skipped"}
    assert set(rows["detail"]) == {NOT_OPENSHIFT}


@pytest.mark.parametrize("criterion", PORTABLE)
def test_portable_criteria_run(plain, criterion):
    _, run = plain
    assert run.status(criterion) == ["passed"], run.detail(criterion)


def test_no_openshift_request_was_needed(plain):
    fc, run = plain
    assert not [r for r in fc.requests if "openshift.io" in r.path and r.status not in (404,)]
    assert "plain Kubernetes" in run.detail("stability")
    assert run.runs.runs[0].okd_version is None
    assert len(run.samples("storage.fsync.p99")) == 3
