"""Suite-level options and fixtures: the API client, the test namespace, workload settings, evidence.

The run-level machinery (options --platform/--kubeconfig/--repeat/--soak…, `record`, `criterion`,
`cluster`) is the okdbench plugin's; this file only adds what the suites themselves need.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from suites import mustgather
from suites.details import BUDGET as DETAIL_LIMIT  # what a detail aims for: reason, evidence path, notes
from suites.kube import NOT_OPENSHIFT, Kube, KubeError, path_for
from suites.workers import node_group_info, node_role
from suites.workloads import render, resolve_images

log = logging.getLogger("okdbench.suites")


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("okdbench-suites", "okdbench suites: workloads")
    g.addoption("--image", action="append", default=[], metavar="NAME=REF",
                help="workload image override (repeatable), e.g. fio=mirror.example.com/etcd-perf:latest; "
                     "also OKDBENCH_IMAGE_<NAME>; defaults in suites/workloads/images.yaml")
    g.addoption("--builds", type=int, default=3, help="builds per strategy per repetition (default 3)")
    g.addoption("--pods", type=int, default=20, help="pods created by pod-startup per repetition (default 20)")
    g.addoption("--api-calls", type=int, default=100, help="calls per operation for the api benchmark (default 100)")
    g.addoption("--ingress-address", metavar="HOST[:PORT]",
                help="connect to routes (*.apps) at this address instead of resolving their host name "
                     "(TLS is still verified against the route's host name)")
    g.addoption("--must-gather", choices=mustgather.MODES, default="inspect",
                help="evidence for a failed criterion when `oc` is on PATH: oc adm inspect of the failing objects "
                     "(default), a full must-gather, or off")
    g.addoption("--workload-timeout", type=float, default=900.0, help="seconds a build, job or pod may take (default 900)")
    g.addoption("--namespace", metavar="NAME",
                help="run workloads in this existing namespace (emptied of okdbench's objects at the end) instead "
                     "of creating one; for service accounts without cluster-wide namespace rights (the CronJob's RBAC)")
    g.addoption("--disrupt-masters", action="store_true",
                help="resilience: also disrupt one master VM (default: workers only; a master outage risks etcd quorum)")
    g.addoption("--wait-ready", type=float, default=300.0,
                help="seconds nodes-ready and csr wait for nodes still turning Ready and CSRs still being "
                     "approved, as right after an install (default 300)")
    g.addoption("--context-interval", type=float, default=5.0,
                help="seconds between samples of the run conditions (steal, CPU ready/delay, swap, host load) "
                     "captured beside each benchmark repetition (default 5)")
    g.addoption("--no-context", action="store_true", help="do not capture run conditions")


@dataclass(frozen=True)
class SuiteOptions:
    images: dict[str, str]
    builds: int
    pods: int
    api_calls: int
    ingress_address: str | None
    must_gather: str
    workload_timeout: float
    wait_ready: float
    namespace: str | None = None


def _positive(name: str, value: float) -> float:
    if value <= 0:
        raise pytest.UsageError(f"--{name}: {value} is not allowed; use a positive number")
    return value


def _suite_options(config: pytest.Config) -> SuiteOptions:
    opt = config.getoption
    try:
        images = resolve_images(opt("image"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    address = opt("ingress_address")
    if address and not re.fullmatch(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9a-fA-F:]+\](:\d{1,5})?", address):
        raise pytest.UsageError(f"--ingress-address: {address!r} is not HOST[:PORT]; e.g. 198.18.0.7:443")
    return SuiteOptions(
        images=images,
        builds=int(_positive("builds", opt("builds"))),
        pods=int(_positive("pods", opt("pods"))),
        api_calls=int(_positive("api-calls", opt("api_calls"))),
        ingress_address=address,
        must_gather=opt("must_gather"),
        workload_timeout=_positive("workload-timeout", opt("workload_timeout")),
        wait_ready=_positive("wait-ready", opt("wait_ready")),
        namespace=_namespace_name(opt("namespace")),
    )


def _namespace_name(name: str | None) -> str | None:
    if name is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", name):
        raise pytest.UsageError(f"--namespace: {name!r} is not a namespace name; use lower-case letters, digits and '-'")
    return name


_options_key = pytest.StashKey[SuiteOptions]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Bad options stop the run before anything touches the cluster or creates a run folder.
    config.stash[_options_key] = _suite_options(config)


@pytest.fixture(scope="session")
def suite_options(request: pytest.FixtureRequest) -> SuiteOptions:
    return request.config.stash[_options_key]


# ---------------------------------------------------------------- cluster access


def _describe_cluster(kube: Kube, run_writer: Any) -> None:
    """Versions and the node inventory in run.json (the spec's inventory wins when there is one)."""
    changes: dict[str, Any] = {}
    try:
        changes["kubernetes_version"] = kube.version().get("gitVersion")
        if kube.is_openshift():
            cv = kube.get_or_none(path_for("config.openshift.io/v1", "clusterversions", name="version")) or {}
            changes["okd_version"] = ((cv.get("status") or {}).get("desired") or {}).get("version")
        if not run_writer.info.nodes:
            groups: dict[str, list[dict]] = {}
            for n in kube.list(path_for("v1", "nodes")):
                groups.setdefault(node_role(n), []).append(n)
            changes["nodes"] = [node_group_info(role, members) for role, members in sorted(groups.items())]
    except KubeError as exc:
        log.warning("could not describe the cluster for run.json: %s", exc)
        return
    run_writer.update_info(**{k: v for k, v in changes.items() if v is not None})


@pytest.fixture(scope="session")
def kube(cluster: Any, okdbench_config: Any, run_writer: Any) -> Kube:
    """The API client for the cluster under test (TLS verified unless --insecure)."""
    try:
        k = Kube(cluster.kubeconfig, insecure=okdbench_config.insecure)
        k.groups()
    except KubeError as exc:
        pytest.fail(f"cannot reach the cluster: {exc}", pytrace=False)
    _describe_cluster(k, run_writer)
    return k


@pytest.fixture(scope="session")
def openshift(kube: Kube) -> Kube:
    """The same client, for tests that need OpenShift/OKD APIs; skips on plain Kubernetes."""
    if not kube.is_openshift():
        pytest.skip(NOT_OPENSHIFT)
    return kube


@pytest.fixture(scope="session")
def namespace(kube: Kube, okdbench_config: Any, suite_options: SuiteOptions) -> str:
    """A namespace for this run's workloads, deleted (with everything in it) at the end.

    With --namespace the given namespace is used as it is and only okdbench's objects in it are
    deleted at the end: least-privilege service accounts may not create namespaces.
    """
    if suite_options.namespace:
        yield suite_options.namespace
        _empty_namespace(kube, suite_options.namespace)
        return
    name = f"okdbench-{secrets.token_hex(3)}"
    try:
        kube.create(path_for("v1", "namespaces"), render("namespace", name=name, run_id=okdbench_config.run_id))
    except KubeError as exc:
        pytest.fail(f"cannot create test namespace {name}: {exc}", pytrace=False)
    log.info("test namespace %s", name)
    yield name
    try:
        kube.delete(path_for("v1", "namespaces", name=name))
    except KubeError as exc:
        log.warning("could not delete test namespace %s: %s", name, exc)


# What the workloads create, so a shared namespace can be emptied of exactly okdbench's objects.
_WORKLOAD_KINDS = [("apps/v1", "deployments"), ("route.openshift.io/v1", "routes"),  # deployments first: no re-created pods
                   ("batch/v1", "jobs"), ("v1", "pods"), ("v1", "configmaps"), ("v1", "services"),
                   ("build.openshift.io/v1", "builds"), ("build.openshift.io/v1", "buildconfigs"),
                   ("image.openshift.io/v1", "imagestreams")]


def _empty_namespace(kube: Kube, namespace: str) -> None:
    selector = "app.kubernetes.io/managed-by=okdbench"
    for api_version, plural in _WORKLOAD_KINDS:
        path = path_for(api_version, plural, namespace)
        try:
            for obj in kube.list(path, labelSelector=selector):
                kube.delete(f"{path}/{obj['metadata']['name']}", propagationPolicy="Background")
        except KubeError as exc:
            if exc.status not in (403, 404):  # a kind the cluster does not serve, or may not list
                log.warning("could not clean %s in namespace %s: %s", plural, namespace, exc)


# ---------------------------------------------------------------- evidence on failure


Fail = Callable[..., None]


def _notes_length(node: pytest.Item) -> int:
    """Length of the notes the plugin will append after the reason ("; "-joined)."""
    from okdbench.plugin import criterion_notes

    return sum(len(n) + 2 for n in criterion_notes(node))


@pytest.fixture
def fail_with_evidence(cluster: Any, okdbench_config: Any, run_writer: Any, suite_options: SuiteOptions,
                       request: pytest.FixtureRequest) -> Fail:
    """fail_with_evidence(reason, objects=[...]): collect oc adm inspect/must-gather, then fail the
    criterion with the reason and where the evidence went (one line)."""
    marker = request.node.get_closest_marker("criterion")
    criterion = marker.args[0] if marker and marker.args else request.node.name

    def fail(reason: str | Callable[[int], str], objects: list[str] | None = None) -> None:
        """reason: the text, or a function of the room left that shortens itself (suites.details.named)."""
        where = None
        if cluster.kubeconfig is not None:
            where = mustgather.collect(Path(cluster.kubeconfig), run_writer.dir, criterion, list(objects or []),
                                       mode=suite_options.must_gather, insecure=okdbench_config.insecure)
        suffix = f"; must-gather: {where}" if where else ""
        room = max(60, DETAIL_LIMIT - len(suffix) - _notes_length(request.node))
        if callable(reason):
            reason = reason(room)  # shortened by its own rules (names kept), not cut here
        elif where:
            # The detail is one bounded line: shorten the reason, never the evidence path.
            reason = reason if len(reason) <= room else reason[: room - 1] + "…"
        pytest.fail(reason + suffix, pytrace=False)

    return fail


# ---------------------------------------------------------------- run conditions


@pytest.fixture(scope="session")
def conditions_capture(request: pytest.FixtureRequest, okdbench_config: Any, run_writer: Any):
    """The run's condition capture (suites/context), or None with --no-context."""
    from suites.context.session import open_capture

    if request.config.getoption("no_context"):
        yield None
        return
    capture = open_capture(okdbench_config, run_writer, _positive("context-interval", request.config.getoption("context_interval")))
    yield capture
    capture.close()


@pytest.fixture(autouse=True)
def conditions(request: pytest.FixtureRequest, conditions_capture: Any):
    """The capture, with the cluster's Prometheus added once a test has the cluster at hand;
    the plugin opens a window with it around every benchmark repetition."""
    if conditions_capture is not None and "prometheus" not in conditions_capture.sources:
        from suites.context.session import add_guest_source

        if {"kube", "openshift"} & set(request.fixturenames):
            add_guest_source(conditions_capture, request.getfixturevalue("kube"),
                             request.getfixturevalue("suite_options"), request.getfixturevalue("okdbench_config"),
                             request.getfixturevalue("namespace") if "namespace" in request.fixturenames else None)
    return conditions_capture


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
