"""The resilience suite end to end: real hypervisor calls on a real libvirt domain, a scripted
cluster whose kubelet follows that domain, and the prober going through the fake router.

The domain boots no OS (SeaBIOS finds no disk and waits): power, pause and reset act on it for
real and cost nothing. A libvirt event loop in this process plays the node's kubelet: when the
domain stops, pauses or resets, the node's pods stop answering at once (the router's endpoint
times out, the Service's connections hang), the node controller marks the node NotReady after a
grace period and evicts its pods; when it runs again the node turns Ready. The suite runs
unchanged, in a subprocess; its in-cluster prober Job's script runs for real (sh, curl) against
the fake's Service network.
A second such domain is a master (--disrupt-masters) whose etcd member leads a scripted etcd
(tests/support/etcd_metrics.py) that a real Prometheus scrapes: the suite reads the leader
change back through the thanos-querier route.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from results.timeline import read_timelines
from suites.prober import Probe
from suites.resilience import analyse, problems
from suites.transitions import Transition
from provision.spec import ResilienceThresholds
from tests.fakekube import scenarios
from tests.support.etcd_metrics import EtcdScript
from tests.support.fakekube import run_suites
from tests.support.prometheus import prometheus, wait_for_series

PREFIX = "resilience16"
GRACE_S = 0.5  # the scripted node-monitor-grace-period
REBOOT_S = 2.0  # how long a reset node stays silent after the cluster noticed
FALLBACK_S = 2.0  # the grace period's end when no in-cluster request reached the silent node (below freeze_s)
PROBE_TIMEOUT_S = 1.0
# Freeze first: its 3 s outlast the scripted etcd election (ELECT_S), so the master's member loses
# the lead exactly there; a power-off's length depends on how fast the cluster notices.
DISRUPTIONS = ["freeze", "reset", "power-off"]
LEADER_LOST = DISRUPTIONS[0]


class Kubelet:
    """Follows one libvirt domain's lifecycle events and scripts what the cluster would do."""

    def __init__(self, fc, node: str):
        self.fc, self.node = fc, node
        self.down_since: float | None = None
        self.lock = threading.Lock()

    def down(self, then_up: bool = False) -> None:
        with self.lock:
            self.fc.workloads.silent_nodes.add(self.node)
            self.epoch = getattr(self, "epoch", 0) + 1
            epoch = self.epoch
            picks = self.fc.workloads.picks.get(self.node, 0)
        # A node with no replica left (evicted by an earlier disruption) has nothing to wait for.
        started = time.monotonic() - (0 if self._has_replica() else FALLBACK_S)
        self.fc.at(GRACE_S, lambda: self._notice(epoch, picks, started, then_up))

    def _has_replica(self) -> bool:
        # The workload's own pods only: a master's system pods carry "app" labels too, and waiting
        # for a request that never comes let a reset's window close before the cluster noticed.
        return any(p["spec"].get("nodeName") == self.node and p["status"].get("phase") == "Running"
                   and str((p["metadata"].get("labels") or {}).get("app", "")).startswith("okdbench-resilience-")
                   for p in self.fc.list("pods"))

    def _notice(self, epoch: int, picks: int, started: float, then_up: bool) -> None:
        with self.lock:
            if self.epoch != epoch or self.node not in self.fc.workloads.silent_nodes:
                return
        # Not before the in-cluster prober sent a connection to the silent node (the Service's
        # round robin does within 3 requests): its failure is then certain, not a race with the clock.
        if self.fc.workloads.picks.get(self.node, 0) == picks and time.monotonic() - started < FALLBACK_S:
            self.fc.at(0.02, lambda: self._notice(epoch, picks, started, then_up))
            return
        self.fc.workloads.node_down(self.node)
        if then_up:  # a reset node reboots for REBOOT_S after the cluster noticed
            self.fc.at(REBOOT_S, self.up)

    def up(self, restart: bool = False) -> None:
        with self.lock:
            self.epoch = getattr(self, "epoch", 0) + 1
            self.fc.workloads.silent_nodes.discard(self.node)
        self.fc.workloads.node_up(self.node)

    def reset(self) -> None:
        self.down(then_up=True)


def _define(conn, name: str):
    dom = conn.defineXML(f"""<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>
      <os><type arch='x86_64' machine='q35'>hvm</type></os><features><acpi/></features>
      <devices><controller type='usb' model='none'/><memballoon model='none'/></devices></domain>""")
    dom.create()
    return dom


@pytest.fixture
def bios_domains(libvirt_uri):
    """(connection, worker domain, master domain), with a libvirt event loop running."""
    import libvirt

    libvirt.virEventRegisterDefaultImpl()
    libvirt.registerErrorHandler(lambda *_: None, None)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            libvirt.virEventRunDefaultImpl()

    conn = libvirt.open(libvirt_uri)
    doms = []
    thread = threading.Thread(target=loop, daemon=True)
    try:
        doms.append(_define(conn, f"{PREFIX}-suite-{os.getpid() % 100000}"))
        doms.append(_define(conn, f"etcd16-master-{os.getpid() % 100000}"))
        thread.start()
        yield conn, *doms
    finally:
        stop.set()

        def remove(dom) -> None:
            try:
                if dom.isActive():
                    dom.destroy()
            finally:
                dom.undefine()

        with ThreadPoolExecutor(len(doms) or 1) as pool:  # destroying a QEMU domain takes 1-2 s: both at once
            for done in [pool.submit(remove, d) for d in doms]:
                done.result()
        if thread.is_alive():
            libvirt.virEventAddTimeout(0, lambda *_: None, None)  # wake the loop so it sees stop
            thread.join(timeout=5)
        conn.close()


def _follow(conn, dom, *followers) -> list[int]:
    """Tell each follower (Kubelet, EtcdScript) when the domain goes down, comes back or resets."""
    import libvirt

    def lifecycle(_c, _d, event, _detail, _o) -> None:
        for f in followers:
            if event in (libvirt.VIR_DOMAIN_EVENT_SUSPENDED, libvirt.VIR_DOMAIN_EVENT_STOPPED):
                f.down()
            elif event in (libvirt.VIR_DOMAIN_EVENT_RESUMED, libvirt.VIR_DOMAIN_EVENT_STARTED):
                f.up(restart=event == libvirt.VIR_DOMAIN_EVENT_STARTED)

    def reboot(*_a) -> None:
        for f in followers:
            f.reset()

    return [conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None),
            conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, reboot, None)]


@pytest.fixture
def etcd_prometheus(fake_cluster, tmp_path):
    """The scripted etcd of the fake cluster's masters, scraped every 0.25 s by a real Prometheus
    that answers the cluster's thanos-querier route."""
    masters = sorted(scenarios.node_names(fake_cluster, "master"))
    script = EtcdScript(fake_cluster, [f"etcd-{m}" for m in masters], disrupted=f"etcd-{masters[0]}")
    target = script.start()
    try:
        with prometheus(tmp_path / "prom", targets=[target], scrape_s=0.25) as prom:
            fake_cluster.prometheus_upstream = prom.url
            yield script, masters[0], prom  # the test waits for the first scrape (~5 s: discovery's throttle)
    finally:
        script.stop()


@pytest.mark.needs_libvirtd
@pytest.mark.slow
def test_resilience_suite_disrupts_the_vm_and_measures_the_cluster(fake_cluster, etcd_prometheus, bios_domains,
                                                                  libvirt_uri, tmp_path):
    conn, dom, master_dom = bios_domains
    script, master, prom = etcd_prometheus
    fc = fake_cluster
    worker = scenarios.node_names(fc, "worker")[0]
    ids = _follow(conn, dom, Kubelet(fc, worker)) + _follow(conn, master_dom, Kubelet(fc, master), script)
    spec = {"name": PREFIX, "base_domain": "example.test", "platform": "kvm", "okd": {"guest": "testguest"},
            "network": {"machine_cidr": "198.18.16.0/24"},
            "nodes": [{"role": "worker", "count": 3, "vcpu": 1, "memory": "1GiB", "disk": "1GiB"}],
            "kvm": {"uri": libvirt_uri, "kernel": "/k", "initrd": "/i", "domain_type": "qemu"},
            "resilience": {"disruptions": [*DISRUPTIONS, "migrate"], "freeze_s": 3.0,
                           "probe_interval_s": 0.1, "probe_timeout_s": PROBE_TIMEOUT_S, "settle_s": 1.0,
                           "vms": {worker: dom.name(), master: master_dom.name()}}}
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    wait_for_series(prom, "etcd_server_is_leader", n=len(script.members))
    try:
        run = run_suites(fc, tmp_path / "results", "suites/test_resilience.py", "--spec", str(spec_file),
                         "--disrupt-masters")
    finally:
        for i in ids:
            conn.domainEventDeregisterAny(i)
    assert run.status("resilience") == ["passed"], run.output[-3000:]
    assert "migrate skipped: resilience.migrate_to names no second host" in run.detail("resilience")
    assert dom.state()[0] == 1 and master_dom.state()[0] == 1  # handed back running
    timelines = {(t.disruption, t.node): t for t in read_timelines(run.run_dir)}
    assert set(timelines) == {(k, n) for k in ("freeze", "reset", "power-off") for n in (worker, master)}

    def sample(metric: str, node: str):
        rows = run.samples(metric)
        rows = rows[[lab["node"] == node for lab in rows["labels"]]]
        assert len(rows) <= 1, (metric, node)
        return rows.iloc[0] if len(rows) else None

    for (kind, node), tl in timelines.items():
        assert tl.vm == (dom.name() if node == worker else master_dom.name())
        node_states = [s for _, k, n, s in tl.transitions if k == "node" and n == node and _ >= 0]
        assert node_states[:1] == ["NotReady"] and node_states[-1] == "Ready", (kind, node, tl.transitions, {k: (round(t.t0, 2), t.transitions) for k, t in timelines.items()})
        detect = sample(f"resilience.{kind}.detect_s", node)
        first_notready = min(t for t, k, n, s in tl.transitions if k == "node" and s == "NotReady" and t >= 0)
        assert detect["value"] == pytest.approx(first_notready, abs=0.01)
        assert sample(f"resilience.{kind}.recover_s", node)["value"] >= detect["value"]
        failed = [p for p in tl.probes if p[0] >= 0 and not p[2]]
        assert sample(f"resilience.{kind}.errors", node)["value"] == len(failed), (kind, node, failed[:5])
        # The node flapped as often as the watch saw it go NotReady (once: each disruption outlasts the grace period).
        assert sample(f"resilience.{kind}.node_flaps", node)["value"] == node_states.count("NotReady") >= 1
        pod_notready = [s for t, k, _n, s in tl.transitions if k == "pod" and s == "NotReady" and t >= 0]
        assert sample(f"resilience.{kind}.pod_flaps", node)["value"] == len(pod_notready)
        # etcd: only the master's first disruption (it led then) took its leader away; the others changed nothing.
        changes = sample(f"resilience.{kind}.leader_changes", node)
        assert changes["value"] == (1 if (kind, node) == (LEADER_LOST, master) else 0), (kind, node)
        assert changes["labels"]["role"] == ("worker" if node == worker else "master")
        assert changes["labels"]["scrape_s"] == pytest.approx(0.25, abs=0.05)
        if (kind, node) != (LEADER_LOST, master):
            assert sample(f"resilience.{kind}.leader_elect_s", node) is None
            assert sample(f"resilience.{kind}.leaderless_s", node)["value"] == 0
    # Power-off: the lost replica ran elsewhere before the VM came back (the pod was evicted).
    pod_states = [s for _, k, _n, s in timelines[("power-off", worker)].transitions if k == "pod"]
    assert "Deleted" in pod_states and pod_states.count("Ready") >= 1
    _assert_incluster(fc, run, worker, master, timelines, sample)

    # The master's first disruption: the new leader is seen at the first scrape that showed it, the
    # leaderless time spans the scrapes that showed no leader (at the 0.25 s scrape resolution).
    t0 = timelines[(LEADER_LOST, master)].t0
    [(flip_t, new_leader)] = script.flips
    seen = min(ms / 1000 for ms, snap in script.scrapes if snap[new_leader].is_leader == 1 and ms / 1000 > t0)
    elect = sample(f"resilience.{LEADER_LOST}.leader_elect_s", master)["value"]
    assert elect == pytest.approx(seen - t0, abs=0.002) and seen >= flip_t - 0.002
    no_leader = [ms / 1000 for ms, snap in script.scrapes
                 if ms / 1000 > t0 and ms / 1000 < seen and not any(m.has_leader for m in snap.values() if m.up)]
    leaderless = sample(f"resilience.{LEADER_LOST}.leaderless_s", master)["value"]
    if no_leader:
        scrape_s = sample(f"resilience.{LEADER_LOST}.leaderless_s", master)["labels"]["scrape_s"]
        assert seen - no_leader[0] - scrape_s - 0.002 <= leaderless <= seen - no_leader[0] + 0.002
    else:  # a scrape starved past the whole election on a loaded machine: nothing was seen leaderless
        assert leaderless == 0


def _assert_incluster(fc, run, worker: str, master: str, timelines: dict, sample) -> None:
    """The in-cluster prober's samples say what the Service network really did during each event."""
    ran = [s for s in fc.processes.started if "okdbench-probe 1" in " ".join(s.argv)]
    assert len(ran) == 1 and ran[0].node and ran[0].node not in (worker, master)  # away from the disrupted nodes
    for (kind, node), tl in timelines.items():
        errors = sample(f"resilience.{kind}.incluster_errors", node)
        assert errors is not None, run.detail("resilience")
        labels = errors["labels"]
        assert (labels["prober"], labels["node"], labels["disruption"]) == ("incluster", node, kind)
        # Ground truth: the connections the Service sent to the silent node, which hung until curl gave up.
        t_end = tl.t0 + max(t for t, *_ in tl.probes)
        window = [r for r in fc.service_network.log if tl.t0 - 1 <= r.t <= t_end + 1]
        hung = [r for r in window if r.outcome != "ok"]
        # An answer that took most of curl's timeout may have missed it on a starved machine: the
        # only way the two counts may differ (it never happens on a machine with a spare core).
        slow = [r for r in window if r.outcome == "ok" and r.t_end - r.t >= PROBE_TIMEOUT_S / 2]
        assert len(hung) <= errors["value"] <= len(hung) + len(slow), (kind, hung, slow)
        # The first disruption hits a worker that runs a replica (later ones may find it evicted;
        # the master runs none).
        assert hung or (kind, node) != (DISRUPTIONS[0], worker)
        unavailable = sample(f"resilience.{kind}.incluster_unavailable_s", node)["value"]
        downtime = sample(f"resilience.{kind}.incluster_downtime_ms", node)["value"]
        if hung:  # each lasted until curl gave up
            assert unavailable >= PROBE_TIMEOUT_S and downtime >= (PROBE_TIMEOUT_S - 0.1) * 1000, (kind, unavailable, downtime)
        else:
            assert (unavailable, downtime) == (0.0, 0.0)
        assert sample(f"resilience.{kind}.incluster_p99_ms", node)["value"] > 0
    assert fc.processes.alive() == []  # the Job was deleted and its pod with it
    assert any(r.method == "DELETE" and r.path.endswith(f"/jobs/{ran[0].pod.rsplit('-', 1)[0]}")
               and "propagationPolicy=Background" in r.query for r in fc.requests)


def _probes(t0: float, fails: list[tuple[float, float]], until: float, step: float = 0.1) -> list[Probe]:
    out, t = [], t0 - 1.0
    while t <= until:
        ok = not any(a <= t - t0 < b for a, b in fails)
        out.append(Probe(t=t, latency_ms=5.0, ok=ok, detail="200" if ok else "504"))
        t = round(t + step, 6)
    return out


def test_flaps_count_ready_to_notready_in_the_window():
    from suites.resilience import flaps

    tr = [Transition(9.0, "node", "w1", "NotReady"), Transition(10.5, "node", "w1", "Ready"),
          Transition(11.0, "node", "w1", "NotReady"), Transition(11.4, "node", "w2", "NotReady"),
          Transition(12.0, "node", "w1", "Ready"), Transition(13.0, "node", "w1", "NotReady"),
          Transition(11.0, "pod", "a", "NotReady"), Transition(11.5, "pod", "a", "Deleted"),
          Transition(12.5, "pod", "b", "NotReady"), Transition(14.0, "pod", "b", "Ready")]
    assert flaps(tr, "node", 10.0, 12.5, "w1") == 1  # before t0 and after t_end do not count
    assert flaps(tr, "node", 10.0, 20.0, "w1") == 2 and flaps(tr, "node", 10.0, 20.0, "w3") == 0
    assert flaps(tr, "pod", 10.0, 20.0) == 2  # a deletion is no flap
    out = analyse("freeze", "w1", "vm1", 10.0, 20.0, [], tr, replicas=3, ready_at_t0=3, interval_s=0.1)
    assert (out.node_flaps, out.pod_flaps) == (2, 2)
    assert out.metrics()["node_flaps"] == (2, "count") and out.metrics()["pod_flaps"] == (2, "count")


def test_a_worker_disruption_that_changes_the_etcd_leader_fails_the_criterion():
    from suites.etcd_leader import Leadership

    out = analyse("freeze", "w1", "vm1", 10.0, 20.0, [], [], replicas=3, ready_at_t0=3, interval_s=0.1)
    out.leader = Leadership(changes=1, elect_s=3.0, leaderless_s=0.0, resolution_s=30.0, leader_before="etcd-m0",
                            leader_after="etcd-m1", witnesses=3)
    assert problems(out, ResilienceThresholds()) == [
        "freeze of w1: etcd changed leader 1 time(s) (limit 0 for a worker: no etcd member runs there)"]
    assert problems(out, ResilienceThresholds(worker_leader_changes=1)) == []
    out.role = "master"  # a master's disruption may move the leader: measured, not judged
    assert problems(out, ResilienceThresholds()) == []


def test_analyse_a_power_off_timeline():
    t0 = 1000.0
    probes = _probes(t0, [(0.0, 2.0)], t0 + 10)
    tr = [Transition(t0 + 1.5, "node", "w1", "NotReady"), Transition(t0 + 1.5, "pod", "app-a", "NotReady"),
          Transition(t0 + 4.0, "pod", "app-a", "Deleted"), Transition(t0 + 4.6, "pod", "app-d", "Ready"),
          Transition(t0 + 7.0, "node", "w1", "Ready")]
    out = analyse("power-off", "w1", "vm1", t0, t0 + 10, probes, tr, replicas=3, ready_at_t0=3, interval_s=0.1)
    assert out.detect_s == pytest.approx(1.5)
    assert (out.node_flaps, out.pod_flaps) == (1, 1)
    assert out.recover_s == pytest.approx(7.0)  # the node came back last
    assert out.errors == 20 and out.requests == 101
    assert out.unavailable_s == pytest.approx(1.9 + 0.005)
    assert out.downtime_ms == pytest.approx((2.005 - 0.1) * 1000, abs=1)
    assert problems(out, ResilienceThresholds()) == []
    strict = ResilienceThresholds(unavailable_s=1.0, recover_s=5.0)
    assert problems(out, strict) == ["power-off of w1: clients saw failures for 1.9 s (limit 1 s)",
                                     "power-off of w1: recovered after 7 s (limit 5 s)"]


def test_analyse_a_clean_migration_and_its_limits():
    t0 = 50.0
    out = analyse("migrate", "w2", "vm2", t0, t0 + 5, _probes(t0, [], t0 + 5), [], replicas=3, ready_at_t0=3,
                  interval_s=0.1)
    assert (out.errors, out.unavailable_s, out.recover_s, out.downtime_ms, out.detect_s) == (0, 0.0, 0.0, 0.0, None)
    assert "detect_s" not in out.metrics() and out.metrics()["errors"] == (0, "count")
    bumpy = analyse("migrate", "w2", "vm2", t0, t0 + 5, _probes(t0, [(0.95, 1.25)], t0 + 5), [], replicas=3,
                    ready_at_t0=3, interval_s=0.1)
    assert bumpy.errors == 3
    assert problems(bumpy, ResilienceThresholds()) == ["migrate of w2: 3 failed request(s) during live migration (limit 0)"]
    bumpy.recovered = False
    bumpy.problems = ["VM vm2 could not be restored (x); restore it by hand"]
    assert problems(bumpy, ResilienceThresholds())[:2] == ["VM vm2 could not be restored (x); restore it by hand",
                                                           "migrate of w2: not recovered"]


def test_prober_records_every_outcome_and_stops_at_its_bound():
    from suites.prober import Prober

    answers = iter([200, 503, ConnectionResetError(), 302] * 10)

    def fetch() -> int:
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    p = Prober(fetch, 0.001, max_probes=8).start()
    p._thread.join()  # it ends by itself at max_probes
    got = p.stop()
    assert [(x.ok, x.detail) for x in got] == [(True, "200"), (False, "503"), (False, "ConnectionResetError"),
                                              (True, "302")] * 2
    assert all(b.t >= a.t for a, b in zip(got, got[1:])) and all(x.latency_ms >= 0 for x in got)


def test_heartbeats_read_as_a_one_hertz_prober_and_nodes_map_to_vms():
    from provision.spec import parse_spec
    from suites.resilience import vm_for_node
    from suites.test_guest_resilience import heartbeat_probes

    assert heartbeat_probes([10, 11, 12, 16, 17], 12.5) == [
        (-1.5, 0.0, True), (-0.5, 0.0, True), (0.5, 0.0, False), (1.5, 0.0, False), (2.5, 0.0, False),
        (3.5, 0.0, True), (4.5, 0.0, True)]
    spec = parse_spec({"name": "okd1", "base_domain": "example.test", "platform": "kvm",
                       "network": {"machine_cidr": "198.18.16.0/24"}, "okd": {"guest": "testguest"},
                       "nodes": [{"role": "worker", "count": 2, "vcpu": 1, "memory": "1GiB", "disk": "1GiB"}],
                       "kvm": {}, "resilience": {"vms": {"odd-node": "vm-x"}}})
    assert vm_for_node(spec, "worker-1.okd1.example.test") == "okd1-worker-1"  # the node's hostname
    assert vm_for_node(spec, "okd1-worker-0") == "okd1-worker-0"
    assert vm_for_node(spec, "odd-node") == "vm-x"
    assert vm_for_node(spec, "worker-7") is None
