"""The resilience suite's in-cluster prober: a Job probing the Service from a node that is not
disrupted, its log read after each disruption and analysed like the ingress prober's requests.

The ingress prober (suites/prober.py, on the okdbench host) goes through the router, which keeps
its own copy of the endpoints (reloaded on change, HAProxy's health checks and retries); this one
asks the Service directly (`<svc>.<ns>.svc`, kube-proxy/OVN load balancing over the endpoints the
EndpointSlice controller publishes), as another application in the cluster would.

Clocks: request times are the prober node's wall clock, t0 and the window end this host's. Both
must be NTP-synced (OKD runs chronyd on every node); the window is widened by CLOCK_SLACK_S on
each side so a skew of a few hundred ms does not drop the first failed requests of an event (the
requests gained at the edges are ones from the steady state before and after: successes).

The log is read whole (bounded by tailLines/limitBytes) after each disruption rather than once at
the end: each disruption's numbers are recorded as soon as it is over, a run stopped later keeps
them, and a prober pod lost mid-run (its own node failing) costs only the disruptions after it.
Reading it whole keeps no offset and needs no `sinceTime` (which the node's clock would resolve).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from suites.kube import Kube, KubeError, path_for, wait_for
from suites.probe_log import ProbeLog, parse
from suites.resilience import Outcome, analyse

log = logging.getLogger("okdbench.resilience")

CLOCK_SLACK_S = 1.0
LINE_BYTES = 128  # a probe line is ~60 bytes: the log read is bounded to this per line
SAMPLES = ("unavailable_s", "errors", "p99_ms", "downtime_ms")  # recorded as resilience.<kind>.incluster_<suffix>
# A container waiting for one of these will not start by itself: say so now, not after workload_timeout.
STUCK = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError"}


def _stuck(pod: dict) -> str | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
        if reason in STUCK:
            return reason
    return None


def _settled(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed") or _stuck(pod) is not None


def deadline_s(max_probes: int, interval_s: float, startup_s: float) -> int:
    """The Job's activeDeadlineSeconds: its start, then max_probes at the probe pace, + 60 s."""
    return int(startup_s + max_probes * interval_s + 60)


def incluster_outcome(out: Outcome, probes: list, interval_s: float, replicas: int) -> Outcome | None:
    """The in-cluster requests' Outcome for the window of `out` (widened by CLOCK_SLACK_S), or
    None when the prober made no request in it. Transitions are the ingress Outcome's business."""
    t0, t_end = out.t0 - CLOCK_SLACK_S, out.t_end + CLOCK_SLACK_S
    if not any(t0 <= p.t <= t_end for p in probes):
        return None
    return analyse(out.disruption, out.node, out.vm, t0, t_end, sorted(probes, key=lambda p: p.t), [],
                   replicas=replicas, ready_at_t0=replicas, interval_s=interval_s)


@dataclass
class InClusterProber:
    kube: Kube
    namespace: str
    job: dict  # rendered resilience-prober-job
    max_probes: int
    pod: str | None = None
    node: str | None = None
    skipped: int = 0  # malformed log lines in the last read
    messages: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.job["metadata"]["name"]

    def start(self, timeout_s: float) -> str | None:
        """Create the Job and wait for its pod to run; None, or one line saying why it does not."""
        try:
            self.kube.create(path_for("batch/v1", "jobs", self.namespace), self.job)
            pod = wait_for(self.kube, path_for("v1", "pods", self.namespace), _settled, timeout_s,
                           label_selector=f"job-name={self.name}")
        except KubeError as exc:
            return f"job {self.name} could not be started ({exc})"
        if pod is None:
            return f"job {self.name}'s pod not Running after {timeout_s:.0f} s"
        if _stuck(pod):
            image = self.job["spec"]["template"]["spec"]["containers"][0]["image"]
            return f"job {self.name}'s pod is stuck in {_stuck(pod)} (image {image}; --image prober=REF sets another)"
        self.pod = pod["metadata"]["name"]
        self.node = (pod.get("spec") or {}).get("nodeName")
        phase = pod["status"]["phase"]
        if phase != "Running":
            try:
                self.read()
            except KubeError:
                pass
            why = f": {self.messages[0]}" if self.messages else ""
            return f"job {self.name}'s pod ended ({phase}) before probing{why}"
        log.info("resilience: in-cluster prober %s runs on %s", self.pod, self.node)
        return None

    def read(self) -> ProbeLog:
        """The pod's log so far, parsed. Raises KubeError when it cannot be read."""
        lines = self.max_probes + 16
        text = self.kube.request("GET", path_for("v1", "pods", self.namespace, self.pod, "log"),
                                 query={"tailLines": lines, "limitBytes": lines * LINE_BYTES}, raw=True)
        parsed = parse(text)
        self.skipped, self.messages = parsed.skipped, parsed.messages
        return parsed

    def measure(self, out: Outcome, interval_s: float, replicas: int) -> tuple[Outcome | None, str]:
        """(the in-cluster Outcome of the disruption `out`, "") or (None, why not, one line)."""
        if self.pod is None:
            return None, "in-cluster prober not running"
        try:
            parsed = self.read()
        except KubeError as exc:
            return None, f"log of {self.pod} not read ({exc})"
        inc = incluster_outcome(out, parsed.probes, interval_s, replicas)
        if inc is None:
            why = f": {parsed.messages[0]}" if parsed.messages else ""
            return None, f"{self.pod} made no request during the {out.disruption} of {out.node}{why}"
        return inc, ""

    def stop(self) -> None:
        try:
            self.kube.delete(path_for("batch/v1", "jobs", self.namespace, self.name), propagationPolicy="Background")
        except KubeError as exc:
            log.warning("could not delete the in-cluster prober job %s: %s", self.name, exc)
