"""The resilience suite end to end: real hypervisor calls on a real libvirt domain, a scripted
cluster whose kubelet follows that domain, and the prober going through the fake router.

The domain boots no OS (SeaBIOS finds no disk and waits): power, pause and reset act on it for
real and cost nothing. A libvirt event loop in this process plays the node's kubelet: when the
domain stops, pauses or resets, the node's pods stop answering at once (the router's endpoint
times out, the Service's connections hang), the node controller marks the node NotReady after a
grace period and evicts its pods; when it runs again the node turns Ready. The suite runs
unchanged, in a subprocess; its in-cluster prober Job's script runs for real (sh, curl) against
the fake's Service network.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
import yaml

from results.timeline import read_timelines
from suites.prober import Probe
from suites.resilience import analyse, problems
from suites.transitions import Transition
from provision.spec import ResilienceThresholds
from tests.fakekube import scenarios
from tests.support.fakekube import run_suites

PREFIX = "resilience16"
GRACE_S = 0.5  # the scripted node-monitor-grace-period
REBOOT_S = 2.0  # how long a reset node stays silent after the cluster noticed
FALLBACK_S = 2.0  # the grace period's end when no in-cluster request reached the silent node (below freeze_s)
PROBE_TIMEOUT_S = 1.0


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
        return any(p["spec"].get("nodeName") == self.node and p["status"].get("phase") == "Running"
                   and "app" in (p["metadata"].get("labels") or {}) for p in self.fc.list("pods"))

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

    def up(self) -> None:
        with self.lock:
            self.epoch = getattr(self, "epoch", 0) + 1
            self.fc.workloads.silent_nodes.discard(self.node)
        self.fc.workloads.node_up(self.node)

    def reset(self) -> None:
        self.down(then_up=True)


@pytest.fixture
def bios_domain(libvirt_uri):
    import libvirt

    libvirt.virEventRegisterDefaultImpl()
    libvirt.registerErrorHandler(lambda *_: None, None)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            libvirt.virEventRunDefaultImpl()

    name = f"{PREFIX}-suite-{os.getpid() % 100000}"
    conn = libvirt.open(libvirt_uri)
    dom = conn.defineXML(f"""<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>
      <os><type arch='x86_64' machine='q35'>hvm</type></os><features><acpi/></features>
      <devices><controller type='usb' model='none'/><memballoon model='none'/></devices></domain>""")
    dom.create()
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield conn, dom
    finally:
        stop.set()
        try:
            if dom.isActive():
                dom.destroy()
        finally:
            dom.undefine()
            libvirt.virEventAddTimeout(0, lambda *_: None, None)  # wake the loop so it sees stop
            thread.join(timeout=5)
            conn.close()


def _follow(conn, dom, kubelet: Kubelet) -> list[int]:
    import libvirt

    def lifecycle(_c, _d, event, _detail, _o) -> None:
        if event in (libvirt.VIR_DOMAIN_EVENT_SUSPENDED, libvirt.VIR_DOMAIN_EVENT_STOPPED):
            kubelet.down()
        elif event in (libvirt.VIR_DOMAIN_EVENT_RESUMED, libvirt.VIR_DOMAIN_EVENT_STARTED):
            kubelet.up()

    return [conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None),
            conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, lambda *_: kubelet.reset(), None)]


@pytest.mark.needs_libvirtd
@pytest.mark.slow
def test_resilience_suite_disrupts_the_vm_and_measures_the_cluster(fake_cluster, bios_domain, libvirt_uri, tmp_path):
    conn, dom = bios_domain
    fc = fake_cluster
    worker = scenarios.node_names(fc, "worker")[0]
    ids = _follow(conn, dom, Kubelet(fc, worker))
    spec = {"name": PREFIX, "base_domain": "example.test", "platform": "kvm", "okd": {"guest": "testguest"},
            "network": {"machine_cidr": "198.18.16.0/24"},
            "nodes": [{"role": "worker", "count": 3, "vcpu": 1, "memory": "1GiB", "disk": "1GiB"}],
            "kvm": {"uri": libvirt_uri, "kernel": "/k", "initrd": "/i", "domain_type": "qemu"},
            "resilience": {"disruptions": ["power-off", "freeze", "reset", "migrate"], "freeze_s": 3.0,
                           "probe_interval_s": 0.1, "probe_timeout_s": PROBE_TIMEOUT_S, "settle_s": 1.0,
                           "vms": {worker: dom.name()}}}
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    try:
        run = run_suites(fc, tmp_path / "results", "suites/test_resilience.py", "--spec", str(spec_file))
    finally:
        for i in ids:
            conn.domainEventDeregisterAny(i)
    assert run.status("resilience") == ["passed"], run.output[-3000:]
    assert "migrate skipped: resilience.migrate_to names no second host" in run.detail("resilience")
    assert dom.state()[0] == 1  # handed back running
    timelines = {t.disruption: t for t in read_timelines(run.run_dir)}
    assert set(timelines) == {"freeze", "reset", "power-off"}
    for kind in ("freeze", "reset", "power-off"):
        tl = timelines[kind]
        assert tl.node == worker and tl.vm == dom.name()
        node_states = [s for _, k, n, s in tl.transitions if k == "node" and n == worker and _ >= 0]
        assert node_states[:1] == ["NotReady"] and node_states[-1] == "Ready", (kind, tl.transitions)
        detect = run.samples(f"resilience.{kind}.detect_s")
        assert len(detect) == 1 and detect["labels"].iloc[0]["node"] == worker
        first_notready = min(t for t, k, n, s in tl.transitions if k == "node" and s == "NotReady" and t >= 0)
        assert detect["value"].iloc[0] == pytest.approx(first_notready, abs=0.01)
        recover = run.samples(f"resilience.{kind}.recover_s")["value"].iloc[0]
        assert recover >= detect["value"].iloc[0]
        failed = [p for p in tl.probes if p[0] >= 0 and not p[2]]
        errors = run.samples(f"resilience.{kind}.errors")["value"].iloc[0]
        assert errors == len(failed)
    # Power-off: the lost replica ran elsewhere before the VM came back (the pod was evicted).
    pod_states = [s for _, k, _n, s in timelines["power-off"].transitions if k == "pod"]
    assert "Deleted" in pod_states and pod_states.count("Ready") >= 1
    _assert_incluster(fc, run, worker, timelines)


def _assert_incluster(fc, run, worker: str, timelines: dict) -> None:
    """The in-cluster prober's samples say what the Service network really did during each event."""
    ran = [s for s in fc.processes.started if "okdbench-probe 1" in " ".join(s.argv)]
    assert len(ran) == 1 and ran[0].node and ran[0].node != worker  # away from the disrupted node
    for kind, tl in timelines.items():
        errors = run.samples(f"resilience.{kind}.incluster_errors")
        assert len(errors) == 1, run.detail("resilience")
        labels = errors["labels"].iloc[0]
        assert (labels["prober"], labels["node"], labels["disruption"]) == ("incluster", worker, kind)
        # Ground truth: the connections the Service sent to the silent node, which hung until curl gave up.
        t_end = tl.t0 + max(t for t, *_ in tl.probes)
        window = [r for r in fc.service_network.log if tl.t0 - 1 <= r.t <= t_end + 1]
        hung = [r for r in window if r.outcome != "ok"]
        # An answer that took most of curl's timeout may have missed it on a starved machine: the
        # only way the two counts may differ (it never happens on a machine with a spare core).
        slow = [r for r in window if r.outcome == "ok" and r.t_end - r.t >= PROBE_TIMEOUT_S / 2]
        assert len(hung) <= errors["value"].iloc[0] <= len(hung) + len(slow), (kind, hung, slow)
        # The first disruption hits a node that runs a replica (later ones may find it evicted).
        assert hung or kind != "power-off"
        unavailable = run.samples(f"resilience.{kind}.incluster_unavailable_s")["value"].iloc[0]
        downtime = run.samples(f"resilience.{kind}.incluster_downtime_ms")["value"].iloc[0]
        if hung:  # each lasted until curl gave up
            assert unavailable >= PROBE_TIMEOUT_S and downtime >= (PROBE_TIMEOUT_S - 0.1) * 1000, (kind, unavailable, downtime)
        else:
            assert (unavailable, downtime) == (0.0, 0.0)
        assert run.samples(f"resilience.{kind}.incluster_p99_ms")["value"].iloc[0] > 0
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


def test_analyse_a_power_off_timeline():
    t0 = 1000.0
    probes = _probes(t0, [(0.0, 2.0)], t0 + 10)
    tr = [Transition(t0 + 1.5, "node", "w1", "NotReady"), Transition(t0 + 1.5, "pod", "app-a", "NotReady"),
          Transition(t0 + 4.0, "pod", "app-a", "Deleted"), Transition(t0 + 4.6, "pod", "app-d", "Ready"),
          Transition(t0 + 7.0, "node", "w1", "Ready")]
    out = analyse("power-off", "w1", "vm1", t0, t0 + 10, probes, tr, replicas=3, ready_at_t0=3, interval_s=0.1)
    assert out.detect_s == pytest.approx(1.5)
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
