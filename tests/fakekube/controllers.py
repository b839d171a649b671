"""What kubelets, the scheduler, the job controller and the build controller would do, on a clock.

Each reacts to store writes (hooks) and schedules its next step with the cluster's timeline, so
a suite watching the API sees the same sequence of states a real cluster shows, only faster.
"""

from __future__ import annotations

import copy
import math
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from tests.fakekube.programs import ProgramResult
from tests.fakekube.resources import Resource
from tests.fakekube.store import ApiError, now_rfc3339

if TYPE_CHECKING:
    from tests.fakekube.cluster import FakeCluster


def _ts(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(obj: dict, type_: str, status: str, reason: str = "", message: str = "", *, update_key: str | None = None) -> None:
    conds = obj.setdefault("status", {}).setdefault("conditions", [])
    now = now_rfc3339()
    for c in conds:
        if c.get("type") == type_:
            if c.get("status") != status:
                c["lastTransitionTime"] = now
            c["status"] = status
            if reason:
                c["reason"] = reason
            if message:
                c["message"] = message
            if update_key:
                c[update_key] = now
            return
    c = {"type": type_, "status": status, "lastTransitionTime": now}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    if update_key:
        c[update_key] = now
    conds.append(c)


def _affine(node: dict, pod_spec: dict) -> bool:
    """Required node affinity: some nodeSelectorTerm whose matchExpressions (on labels) and
    matchFields (metadata.name, the only field the scheduler supports) all hold."""
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True

    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}

    def holds(e: dict, have: dict) -> bool:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        return {"In": key in have and have[key] in values, "NotIn": have.get(key) not in values,
                "Exists": key in have, "DoesNotExist": key not in have}.get(op, False)

    return any(all(holds(e, labels) for e in t.get("matchExpressions") or [])
               and all(holds(e, fields) for e in t.get("matchFields") or []) for t in terms)


class Controllers:
    def __init__(self, cluster: "FakeCluster"):
        self.c = cluster
        self._rr = 0
        self._ip = 10
        cluster.store.hooks.append(self.on_write)

    # ------------------------------------------------------------ hooks

    def on_write(self, type_: str, res: Resource, obj: dict) -> None:
        if res.kind == "Pod" and type_ == "ADDED" and not obj.get("status", {}).get("phase"):
            self.c.at(self.c.timings.pod_scheduled_s, lambda: self._schedule(obj))
        elif res.kind == "Job" and type_ == "ADDED" and not obj.get("status"):
            self._start_job(obj)
        elif res.kind == "Pod" and type_ == "MODIFIED":
            owner = next((o for o in obj["metadata"].get("ownerReferences", []) if o.get("kind") == "Job"), None)
            phase = obj.get("status", {}).get("phase")
            if owner and phase in ("Succeeded", "Failed"):
                self._finish_job(obj["metadata"]["namespace"], owner["name"], phase)

    # ------------------------------------------------------------ scheduler + kubelet

    def pick_node(self, pod: dict) -> str | None:
        spec = pod["spec"]
        if spec.get("nodeName"):
            return spec["nodeName"]
        selector = dict(spec.get("nodeSelector") or {})
        nodes, _ = self.c.store.list(self.c.res("nodes"), None)
        ok = []
        for n in nodes:
            labels = n["metadata"].get("labels") or {}
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
            if not ready or n.get("spec", {}).get("unschedulable"):
                continue
            if all(labels.get(k) == v for k, v in selector.items()) and _affine(n, spec):
                ok.append(n["metadata"]["name"])
        if not ok:
            return None
        self._rr += 1
        return ok[self._rr % len(ok)]

    def _mutate_pod(self, ns: str, name: str, fn) -> dict | None:
        try:
            return self.c.store.mutate(self.c.res("pods"), ns, name, fn)
        except ApiError:
            return None  # deleted meanwhile

    def _schedule(self, pod: dict) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        node = self.pick_node(pod)

        def apply(p: dict) -> None:
            st = p.setdefault("status", {})
            st["phase"] = "Pending"
            st["qosClass"] = "BestEffort"
            if node is None:
                set_condition(p, "PodScheduled", "False", "Unschedulable", "0/0 nodes are available")
                return
            p["spec"]["nodeName"] = node
            st["hostIP"] = self.c.node_ip(node)
            set_condition(p, "PodScheduled", "True")

        self._mutate_pod(ns, name, apply)
        if node is not None:
            delay = max(0.0, self.c.timings.pod_ready_s - self.c.timings.pod_scheduled_s)
            self.c.at(delay, lambda: self._start(ns, name))

    def _program(self, pod: dict) -> ProgramResult | None:
        for prog in self.c.programs:
            out = prog(self.c, pod)
            if out is not None:
                return out
        return None

    def _start(self, ns: str, name: str) -> None:
        self._ip += 1
        ip = f"10.128.{self._ip // 250}.{self._ip % 250 + 2}"
        started = now_rfc3339()

        def apply(p: dict) -> None:
            st = p["status"]
            st["phase"] = "Running"
            st["podIP"] = ip
            st["podIPs"] = [{"ip": ip}]
            st["startTime"] = started
            for t in ("Initialized", "ContainersReady", "Ready"):
                set_condition(p, t, "True")
            st["containerStatuses"] = [
                {"name": c["name"], "image": c.get("image", ""), "imageID": c.get("image", ""),
                 "containerID": f"cri-o://{self.c.store.random_suffix(12)}", "ready": True, "started": True,
                 "restartCount": 0, "state": {"running": {"startedAt": started}}, "lastState": {}}
                for c in p["spec"].get("containers", [])
            ]

        pod = self._mutate_pod(ns, name, apply)
        if pod is None:
            return
        prog = self._program(pod)
        if prog is not None:
            self.c.logs[(ns, name)] = prog.log
            if prog.live:
                self.c.processes.run(pod)
                return  # its exit ends the pod
        run_to_completion = pod["spec"].get("restartPolicy", "Always") != "Always"
        if (prog is not None or run_to_completion) and not pod["metadata"].get("annotations", {}).get("openshift.io/build.name"):
            run_s = prog.run_s if prog and prog.run_s is not None else self.c.timings.job_run_s
            if math.isfinite(run_s):
                code = prog.exit_code if prog else 0
                self.c.at(run_s, lambda: self.terminate(ns, name, code))

    def terminate(self, ns: str, name: str, exit_code: int) -> None:
        finished = now_rfc3339()

        def apply(p: dict) -> None:
            st = p["status"]
            st["phase"] = "Succeeded" if exit_code == 0 else "Failed"
            reason = "PodCompleted" if exit_code == 0 else "PodFailed"
            for t in ("ContainersReady", "Ready"):
                set_condition(p, t, "False", reason)
            for cs in st.get("containerStatuses", []):
                started = cs.get("state", {}).get("running", {}).get("startedAt", finished)
                cs["ready"], cs["started"] = False, False
                cs["state"] = {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                                              "startedAt": started, "finishedAt": finished,
                                              "containerID": cs.get("containerID", "")}}

        self._mutate_pod(ns, name, apply)

    def restart_container(self, ns: str, name: str, container: str | None = None) -> dict | None:
        now = now_rfc3339()

        def apply(p: dict) -> None:
            for cs in p["status"].get("containerStatuses", []):
                if container in (None, cs["name"]):
                    cs["lastState"] = {"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": now, "finishedAt": now}}
                    cs["restartCount"] = cs.get("restartCount", 0) + 1
                    cs["state"] = {"running": {"startedAt": now}}
                    break

        return self._mutate_pod(ns, name, apply)

    # ------------------------------------------------------------ jobs

    def _start_job(self, job: dict) -> None:
        ns, name, uid = job["metadata"]["namespace"], job["metadata"]["name"], job["metadata"]["uid"]
        template = copy.deepcopy(job["spec"]["template"])
        md = template.setdefault("metadata", {})
        md["generateName"] = f"{name}-"
        md.setdefault("labels", {}).update({"job-name": name, "batch.kubernetes.io/job-name": name,
                                            "controller-uid": uid, "batch.kubernetes.io/controller-uid": uid})
        md["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid,
                                  "controller": True, "blockOwnerDeletion": True}]
        template["spec"].setdefault("restartPolicy", "Never")

        def active(j: dict) -> None:
            j["status"] = {"active": 1, "startTime": now_rfc3339(), "ready": 0}

        self.c.store.mutate(self.c.res("jobs"), ns, name, active)
        self.c.store.create(self.c.res("pods"), ns, template)

    def delete_dependents(self, owner: dict) -> None:
        """The garbage collector for propagationPolicy Background/Foreground: the owner's pods go too."""
        uid = owner["metadata"].get("uid")
        ns = owner["metadata"].get("namespace")
        for pod in self.c.list("pods", ns):
            if any(o.get("uid") == uid for o in pod["metadata"].get("ownerReferences", [])):
                try:
                    self.c.store.delete(self.c.res("pods"), ns, pod["metadata"]["name"])
                except ApiError:
                    pass

    def _finish_job(self, ns: str, name: str, phase: str) -> None:
        def apply(j: dict) -> None:
            st = j.setdefault("status", {})
            if st.get("succeeded") or st.get("failed"):
                return
            st["active"] = 0
            if phase == "Succeeded":
                st["succeeded"] = 1
                st["completionTime"] = now_rfc3339()
                set_condition(j, "SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods", update_key="lastProbeTime")
                set_condition(j, "Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods", update_key="lastProbeTime")
            else:
                st["failed"] = 1
                set_condition(j, "FailureTarget", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit", update_key="lastProbeTime")
                set_condition(j, "Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit", update_key="lastProbeTime")

        try:
            self.c.store.mutate(self.c.res("jobs"), ns, name, apply)
        except ApiError:
            pass

    # ------------------------------------------------------------ builds

    def instantiate(self, ns: str, bc_name: str, request: dict | None) -> dict:
        bcs = self.c.res("buildconfigs")
        holder: dict = {}

        def bump(bc: dict) -> None:
            st = bc.setdefault("status", {})
            st["lastVersion"] = int(st.get("lastVersion", 0)) + 1
            holder["bc"] = copy.deepcopy(bc)

        self.c.store.mutate(bcs, ns, bc_name, bump)
        bc = holder["bc"]
        number = bc["status"]["lastVersion"]
        name = f"{bc_name}-{number}"
        template = self.c.real_build()
        build = {
            "metadata": {
                "name": name, "namespace": ns,
                "annotations": {"openshift.io/build-config.name": bc_name, "openshift.io/build.number": str(number),
                                "openshift.io/build.pod-name": f"{name}-build"},
                "labels": {**(bc["metadata"].get("labels") or {}), "buildconfig": bc_name,
                           "openshift.io/build-config.name": bc_name, "openshift.io/build.start-policy": "Serial"},
                "ownerReferences": [{"apiVersion": "build.openshift.io/v1", "kind": "BuildConfig", "name": bc_name,
                                     "uid": bc["metadata"]["uid"], "controller": True}],
            },
            "spec": {**{k: copy.deepcopy(v) for k, v in bc["spec"].items() if k in ("source", "strategy", "output", "resources", "postCommit", "nodeSelector")},
                     "serviceAccount": "builder",
                     "triggeredBy": [{"message": "Manually triggered"}]},
            "status": {"phase": "New", "config": {"kind": "BuildConfig", "namespace": ns, "name": bc_name},
                       "conditions": [{"type": "New", "status": "True", "lastUpdateTime": now_rfc3339(),
                                       "lastTransitionTime": now_rfc3339()}]},
        }
        created = self.c.store.create(self.c.res("builds"), ns, build)
        strategy = build["spec"].get("strategy", {}).get("type", "Source")
        outcome = self.c.build_outcome.get(strategy, "Complete")
        t = self.c.timings
        self.c.at(t.build_pending_s, lambda: self._build_pending(ns, name))
        self.c.at(t.build_pending_s + 0.1, lambda: self._build_running(ns, name))
        total = sum(t.build_stages_ms.values()) / 1000.0
        self.c.at(t.build_pending_s + 0.1 + total, lambda: self._build_done(ns, name, outcome, template))
        return created

    def _build_cond(self, b: dict, phase: str) -> None:
        for c in b["status"].get("conditions", []):
            if c["status"] == "True":
                c["status"] = "False"
                c["lastTransitionTime"] = c["lastUpdateTime"] = now_rfc3339()
        set_condition(b, phase, "True", update_key="lastUpdateTime")
        b["status"]["phase"] = phase

    def _build_pending(self, ns: str, name: str) -> None:
        build = self.c.store.mutate(self.c.res("builds"), ns, name, lambda b: self._build_cond(b, "Pending"))
        strategy = build["spec"].get("strategy", {}).get("type", "Source")
        container = {"Docker": "docker-build", "Source": "sti-build"}.get(strategy, "custom-build")
        pod = {"metadata": {"name": f"{name}-build", "namespace": ns,
                            "annotations": {"openshift.io/build.name": name},
                            "labels": {"openshift.io/build.name": name},
                            "ownerReferences": [{"apiVersion": "build.openshift.io/v1", "kind": "Build", "name": name,
                                                 "uid": build["metadata"]["uid"], "controller": True}]},
               "spec": {"restartPolicy": "Never", "serviceAccountName": "builder",
                        "nodeSelector": {"node-role.kubernetes.io/worker": ""},
                        "containers": [{"name": container, "image": "quay.io/openshift/okd-content@sha256:builder",
                                        "command": ["openshift-" + container]}]}}
        self.c.store.create(self.c.res("pods"), ns, pod, check_namespace=False)

    def _build_running(self, ns: str, name: str) -> None:
        def apply(b: dict) -> None:
            self._build_cond(b, "Running")
            b["status"]["startTimestamp"] = now_rfc3339()
        self.c.store.mutate(self.c.res("builds"), ns, name, apply)

    def _build_done(self, ns: str, name: str, outcome: str, template: dict) -> None:
        real_stages = {s["name"]: s for s in template["status"]["stages"]}
        t = self.c.timings

        def apply(b: dict) -> None:
            st = b["status"]
            start = datetime.strptime(st.get("startTimestamp") or now_rfc3339(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            stages, clock = [], start
            for stage_name, ms in t.build_stages_ms.items():
                if outcome != "Complete" and stage_name == "PushImage":
                    break  # a failed build stops in its Build stage
                real = real_stages.get(stage_name, {"steps": [{"name": stage_name}]})
                steps = [{"name": s["name"], "startTime": _ts(clock), "durationMilliseconds": int(ms)} for s in real["steps"]]
                stages.append({"name": stage_name, "startTime": _ts(clock), "durationMilliseconds": int(ms), "steps": steps})
                clock += timedelta(milliseconds=ms)
            st["stages"] = stages
            done = datetime.now(timezone.utc)
            st["completionTimestamp"] = _ts(done)
            st["duration"] = int(max(0, (done.replace(microsecond=0) - start).total_seconds())) * 10**9
            if outcome == "Complete":
                st["output"] = {"to": {"imageDigest": "sha256:" + "ab" * 32}}
                st["outputDockerImageReference"] = f"image-registry.openshift-image-registry.svc:5000/{ns}/{b['spec'].get('output', {}).get('to', {}).get('name', name).split(':')[0]}:latest"
                self._build_cond(b, "Complete")
            else:
                self._build_cond(b, "Failed")
                strategy = b["spec"].get("strategy", {}).get("type", "Source")
                st["reason"] = "DockerBuildFailed" if strategy == "Docker" else "GenericBuildFailed"
                st["message"] = "Docker build strategy has failed." if strategy == "Docker" else "Generic Build failure - check logs for details."
                st["logSnippet"] = "error: build error: building at STEP \"RUN npm install\": exit status 1"

        self.c.store.mutate(self.c.res("builds"), ns, name, apply)
        self.c.logs[(ns, name)] = "Receiving source from STDIN as archive ...\n" + (
            "Successfully pushed image\nPush successful\n" if outcome == "Complete" else "error: build error: exit status 1\n")
        self.terminate(ns, f"{name}-build", 0 if outcome == "Complete" else 1)
