"""resilience: disrupt node VMs through the hypervisor (freeze, reset, reboot, power-off, live
migration) and measure, from the cluster's and the clients' side, how long the application suffers.

A Deployment (spec.resilience.replicas, spread across workers, readiness probe) behind a Service
and a Route is probed from this machine through the ingress while one worker VM is disrupted at
a time (a master too with --disrupt-masters). Node and pod transitions come from watches; etcd's
leadership over each disruption from the cluster's Prometheus (suites/etcd_prometheus.py). A Job on
a node that is not disrupted probes the Service directly (suites/incluster_prober.py); its numbers
are recorded beside the ingress ones (`incluster_*`), the ingress prober's drive the criterion.
"""

from __future__ import annotations

import logging
import secrets

import pytest

from provision.base import platform_module
from results.timeline import Timeline, write_timeline
from suites.disrupt import run_disruption
from suites.etcd_prometheus import LeaderWatch
from suites.incluster_prober import SAMPLES, InClusterProber, deadline_s
from suites.kube import KubeError, path_for
from suites.prober import Prober
from suites.resilience import Outcome, max_probes, problems, vm_for_node
from suites.routes import https_get, ingress_ca, prometheus_querier, route_host
from suites.transitions import Recorder
from suites.workers import node_role
from suites.workloads import render

log = logging.getLogger("okdbench.resilience")

TIMELINE_LEAD_S = 5.0  # requests before t0 kept in the timeline, for the chart's baseline


def _targets(kube, spec, pods_on: set[str], masters: bool) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(role, node, vm) to disrupt: one worker running a replica, and one master when asked."""
    chosen, notes = [], []
    nodes = sorted(kube.list(path_for("v1", "nodes")), key=lambda n: n["metadata"]["name"])
    for role in ["worker"] + (["master"] if masters else []):
        candidates = [n["metadata"]["name"] for n in nodes if node_role(n) == role]
        if role == "worker":
            candidates = [n for n in candidates if n in pods_on]
        mapped = [(n, vm_for_node(spec, n)) for n in candidates]
        mapped = [(n, vm) for n, vm in mapped if vm]
        if mapped:
            chosen.append((role, *mapped[0]))
        else:
            notes.append(f"no {role} VM found for nodes {', '.join(candidates[:3]) or '-'} "
                         "(name them in resilience.vms)")
    return chosen, notes


def _record_ha_fact(spec, run_writer, insecure: bool, note) -> None:
    if spec.platform != "vsphere":
        return
    try:
        ha = platform_module("vsphere").hypervisor_facts(spec, insecure=insecure).get("ha", {})
    except Exception as exc:  # a fact, not the measurement: say so and carry on
        note(f"vSphere HA configuration not read ({str(exc)[:80]})")
        return
    run_writer.update_info(hypervisor={**run_writer.info.hypervisor, "ha": ha})


@pytest.mark.criterion("resilience")
def test_resilience(openshift, namespace, spec, okdbench_config, suite_options, record, note, run_writer, request,
                    fail_with_evidence):
    kube = openshift
    if spec is None:
        pytest.skip("needs --spec: the disruptions go through the hypervisor the spec names")
    cfg = spec.resilience
    insecure = okdbench_config.insecure
    _record_ha_fact(spec, run_writer, insecure, note)

    name = f"okdbench-resilience-{secrets.token_hex(2)}"
    kube.create(path_for("apps/v1", "deployments", namespace),
                render("resilience-deployment", name=name, namespace=namespace, replicas=cfg.replicas, role="worker",
                       image=suite_options.images["web"]))
    service = kube.create(path_for("v1", "services", namespace), render("resilience-service", name=name, namespace=namespace))
    kube.create(path_for("route.openshift.io/v1", "routes", namespace),
                render("resilience-route", name=name, namespace=namespace))
    nodes = [n["metadata"]["name"] for n in kube.list(path_for("v1", "nodes"))]
    recorder = Recorder(kube, namespace, name, nodes).start()
    prober = incluster = None
    outcomes = []
    inside: dict[int, Outcome] = {}  # index in outcomes -> the in-cluster prober's Outcome
    try:
        if not recorder.wait(lambda: recorder.ready_pods() >= cfg.replicas, suite_options.workload_timeout):
            fail_with_evidence(f"{recorder.ready_pods()}/{cfg.replicas} replicas Ready after "
                               f"{suite_options.workload_timeout:.0f}s", [f"ns/{namespace}"])
        host = route_host(kube, namespace, name)
        if not host:
            fail_with_evidence(f"route {namespace}/{name} got no host", [f"ns/{namespace}"])
        ca = ingress_ca(kube)

        def fetch() -> int:
            return https_get(host, "/", ca_pem=ca, address=suite_options.ingress_address, insecure=insecure,
                             timeout_s=cfg.probe_timeout_s).status

        targets, target_notes = _targets(kube, spec, {n for p, n in recorder.pod_node.items() if n},
                                         request.config.getoption("disrupt_masters"))
        for n in target_notes:
            note(n)
        if not targets:
            pytest.skip("; ".join(target_notes))
        leaders = LeaderWatch.open(lambda: prometheus_querier(kube, address=suite_options.ingress_address,
                                                              insecure=insecure), note)
        # A migrated VM leaves the spec's host, a host failure leaves it elsewhere: those two last.
        kinds = sorted(cfg.disruptions, key=lambda k: {"migrate": 1, "ha-restart": 2}.get(k, 0))
        if "migrate" in kinds and not cfg.migrate_to:
            kinds.remove("migrate")
            note("migrate skipped: resilience.migrate_to names no second host")
        bound = max_probes(cfg, len(targets) * len(kinds))
        incluster = InClusterProber(kube, namespace, render(
            "resilience-prober-job", name=f"{name}-prober", namespace=namespace, image=suite_options.images["prober"],
            url=f"http://{name}.{namespace}.svc:{service['spec']['ports'][0]['port']}/",
            interval_ns=int(cfg.probe_interval_s * 1e9), timeout_s=cfg.probe_timeout_s, max_probes=bound,
            deadline_s=deadline_s(bound, cfg.probe_interval_s, suite_options.workload_timeout),
            avoid_nodes=[node for _, node, _ in targets]), bound)
        why = incluster.start(suite_options.workload_timeout)
        if why:
            note(f"in-cluster prober not measured: {why}; the ingress measurements stand")
        prober = Prober(fetch, cfg.probe_interval_s, max_probes=bound, name="resilience-prober").start()
        for role, node, vm in targets:
            for kind in kinds:
                if not recorder.wait(lambda: recorder.node_ready.get(node, True) and recorder.ready_pods() >= cfg.replicas,
                                     cfg.thresholds.recover_s):
                    fail_with_evidence(f"cluster not steady before {kind} of {node}", [f"node/{node}", f"ns/{namespace}"])
                out = run_disruption(kind, spec, vm, node, recorder, prober, insecure=insecure)
                out.role = role
                outcomes.append((role, out))
                for suffix, (value, unit) in out.metrics().items():
                    record(f"resilience.{kind}.{suffix}", value, unit, node=node, vm=vm, role=role, disruption=kind)
                if not why:
                    inc, why = incluster.measure(out, cfg.probe_interval_s, cfg.replicas)
                    if why:
                        note(f"in-cluster prober: {why}; the ingress measurements stand")
                    else:
                        inside[len(outcomes) - 1] = inc
                        for suffix, (value, unit) in inc.metrics().items():
                            if suffix in SAMPLES:
                                record(f"resilience.{kind}.incluster_{suffix}", value, unit, node=node, vm=vm,
                                       role=role, disruption=kind, prober="incluster")
                with recorder.changed:
                    transitions = list(recorder.transitions)
                t0 = out.t0
                write_timeline(run_writer.dir, f"{kind}-{role}",
                               Timeline(disruption=kind, node=node, vm=vm, t0=t0,
                                        probes=[(p.t - t0, p.latency_ms, p.ok) for p in prober.snapshot()
                                                if t0 - TIMELINE_LEAD_S <= p.t <= out.t_end],
                                        transitions=[(t.t - t0, t.kind, t.name, t.state) for t in transitions
                                                     if t0 - TIMELINE_LEAD_S <= t.t <= out.t_end]))
                out.leader = leaders.measure(out.t0, out.t_end)  # may wait for Prometheus' next scrape
                if out.leader is not None:  # at the scrape interval's resolution: the label says which
                    for suffix, (value, unit) in out.leader.metrics().items():
                        record(f"resilience.{kind}.{suffix}", value, unit, node=node, vm=vm, role=role, disruption=kind,
                               scrape_s=round(out.leader.resolution_s or 0.0, 3))
                restore = [p for p in out.problems if "could not be restored" in p] + out.warnings
                for n in out.notes:
                    note(n)
                if restore:
                    run_writer.update_info(warnings=[*run_writer.info.warnings, *restore])
    finally:
        if prober is not None:
            prober.stop()
        if incluster is not None:
            incluster.stop()
        watch_errors = recorder.stop()
        try:
            kube.delete(path_for("apps/v1", "deployments", namespace, name))
        except KubeError as exc:
            log.warning("could not delete deployment %s: %s", name, exc)
    for i, (role, out) in enumerate(outcomes):
        inc = inside.get(i)
        also = f" (in cluster: {inc.unavailable_s:.1f}s, {inc.errors}/{inc.requests} failed)" if inc else ""
        etcd = f", etcd leader changes {out.leader.changes}" if out.leader is not None else ""
        note(f"{out.disruption} {role}: {out.unavailable_s:.1f}s unavailable, {out.errors}/{out.requests} failed{etcd}{also}")
    if incluster is not None and incluster.skipped:
        note(f"in-cluster prober: {incluster.skipped} malformed log line(s) skipped")
    found = [p for _, out in outcomes for p in problems(out, cfg.thresholds)]
    if watch_errors:
        found.append(f"watch failed: {watch_errors[0]}")
    if found:
        fail_with_evidence("; ".join(found), [f"node/{node}" for _, node, _ in targets] + [f"ns/{namespace}"])
