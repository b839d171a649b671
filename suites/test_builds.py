"""builds: the seed's key number. Binary builds of a reference app with the Docker and the S2I
strategy, run one after another, watched to completion; duration and every status.stages entry."""

from __future__ import annotations

import logging
import time

import pytest

from suites.kube import KubeError, path_for, wait_for
from suites.workloads import app_archive, render

log = logging.getLogger("okdbench.builds")

APP = "hello-node"
FINAL = ("Complete", "Failed", "Error", "Cancelled")


def _ensure(kube, path: str, obj: dict) -> None:
    if kube.get_or_none(f"{path}/{obj['metadata']['name']}") is None:
        kube.create(path, obj)


def build_node(kube, namespace: str, build: dict) -> str:
    pod = (build["metadata"].get("annotations") or {}).get("openshift.io/build.pod-name")
    if not pod:
        return "?"
    obj = kube.get_or_none(path_for("v1", "pods", namespace, pod)) or {}
    return (obj.get("spec") or {}).get("nodeName") or "?"


@pytest.mark.benchmark
@pytest.mark.criterion("builds")
@pytest.mark.parametrize("strategy", ["Docker", "Source"])
def test_builds(openshift, namespace, strategy, suite_options, record, note, fail_with_evidence):
    kube = openshift
    images = suite_options.images
    _ensure(kube, path_for("image.openshift.io/v1", "imagestreams", namespace), render("imagestream", name=APP, namespace=namespace))
    bc_name = f"{APP}-{strategy.lower()}"
    _ensure(kube, path_for("build.openshift.io/v1", "buildconfigs", namespace),
            render("buildconfig", name=bc_name, namespace=namespace, app=APP, strategy=strategy, imagestream=APP,
                   base_image=images["nodejs-base"], builder_image=images["nodejs-builder"]))
    archive = app_archive(APP)
    builds_path = path_for("build.openshift.io/v1", "builds", namespace)
    failures: list[str] = []
    durations: list[float] = []
    for i in range(suite_options.builds):
        start = time.monotonic()
        try:
            build = kube.post_bytes(path_for("build.openshift.io/v1", "buildconfigs", namespace, bc_name, "instantiatebinary"),
                                    archive, query={"name": bc_name, "namespace": namespace})
        except KubeError as exc:
            failures.append(f"start of build {i + 1}: {exc}")
            continue
        name = build["metadata"]["name"]
        log.info("build %s (%s) started", name, strategy)
        done = wait_for(kube, builds_path, lambda b: (b.get("status") or {}).get("phase") in FINAL,
                        suite_options.workload_timeout, field_selector=f"metadata.name={name}")
        wall = time.monotonic() - start
        if done is None:
            failures.append(f"{name} not finished after {suite_options.workload_timeout:.0f}s")
            continue
        status = done.get("status") or {}
        if status.get("phase") != "Complete":
            failures.append(f"{name} {status.get('phase')}: {status.get('reason', '')} {status.get('message', '')}".strip())
            continue
        labels = {"node": build_node(kube, namespace, done), "strategy": strategy, "app": APP, "build": name}
        # status.duration is what `oc get builds` shows (the cluster's clock, whole seconds);
        # build.wall is okdbench's view: request to observed completion, including scheduling.
        duration = status.get("duration") / 1e9 if status.get("duration") else wall
        record("build.duration", duration, "s", **labels)
        record("build.wall", wall, "s", **labels)
        for stage in status.get("stages") or []:
            record(f"build.stage.{stage['name']}", stage.get("durationMilliseconds", 0), "ms", **labels)
        durations.append(duration)
        log.info("build %s complete in %.1fs", name, duration)
    if durations:
        note(f"{len(durations)} {strategy} builds, median {sorted(durations)[len(durations) // 2]:.0f}s")
    if failures:
        fail_with_evidence(f"{len(failures)} of {suite_options.builds} {strategy} builds failed: {failures[0]}",
                           [f"ns/{namespace}"])
