"""--namespace: workloads run in an existing namespace (least-privilege RBAC) and leave it empty of okdbench objects."""

from __future__ import annotations

from tests.support.fakekube import run_suites, started

KINDS = ["pods", "jobs", "configmaps", "services", "builds", "buildconfigs", "imagestreams"]


def test_existing_namespace_is_used_and_emptied_not_deleted(tmp_path):
    with started(tmp_path / "fake") as fc:
        fc.ensure_namespace("okdbench-tests")
        run = run_suites(fc, tmp_path / "results", "-k", "api or pod_startup or builds", "--namespace", "okdbench-tests",
                         "--builds", "1", "--pods", "2", "--api-calls", "3", "--workload-timeout", "30")
        assert run.proc.returncode == 0, run.output[-3000:]
        for name in ("api", "pod-startup", "builds"):
            assert set(run.status(name)) == {"passed"}, (name, run.detail(name))
        # No namespace of its own was created; the workloads went into the given one, which survives
        # without okdbench's objects.
        posts = [r.path for r in fc.requests if r.method == "POST"]
        assert "/api/v1/namespaces" not in posts
        assert any(p.startswith("/api/v1/namespaces/okdbench-tests/") for p in posts)
        assert not any(r.method == "DELETE" and r.path == "/api/v1/namespaces/okdbench-tests" for r in fc.requests)
        assert "okdbench-tests" in [n["metadata"]["name"] for n in fc.list("namespaces")]
        for plural in KINDS:
            left = fc.list(plural, "okdbench-tests", label_selector="app.kubernetes.io/managed-by=okdbench")
            assert left == [], (plural, [o["metadata"]["name"] for o in left])


def test_bad_namespace_name_is_one_line(tmp_path):
    with started(tmp_path / "fake") as fc:
        run = run_suites(fc, tmp_path / "results", "--namespace", "Not_Valid")
        assert run.proc.returncode != 0
        assert "--namespace: 'Not_Valid' is not a namespace name" in run.output
        assert "Traceback" not in run.output
