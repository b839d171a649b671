"""A focused, scripted Kubernetes/OpenShift API server for the project's tests.

Real HTTPS (own CA, cert for 127.0.0.1; the kubeconfig carries the CA and a bearer token, so
clients verify TLS), discovery for core/batch/certificates and the OpenShift groups (config,
build, image, machineconfiguration, operator, imageregistry, route), list/get/create/replace/
merge- and JSON-patch/delete, label and field selectors, chunked watch streams with
resourceVersion, bookmarks and 410 Gone after compaction, subresources (pods/log, status,
CSR approval, buildconfigs/instantiate[binary], builds/log). Controllers play scheduler,
kubelet, job controller and build controller on a clock (`Timings`); fio and iperf3 pods print
their tools' JSON from a per-node performance table (`NodePerf`); the resilience suite's prober Job
runs for real (sh, curl) against a Service network on loopback (services.py, processes.py). A router
serves *.apps routes (console, thanos-querier's Prometheus API) with a separate ingress CA.

Objects come from tests/data/real-objects (see scenarios.py); scripted changes and faults:

    fc = FakeCluster(workdir, openshift=True).start(); scenarios.healthy_okd(fc)
    fc.at(1.5, fn)                          # any change at t+1.5 s
    fc.on_first_watch("events", 0.5, fn)    # relative to when a client first watches a resource
    fc.set_node_ready(name, False); fc.restart_container(ns, pod); fc.set_condition(plural, name, type, status)
    fc.add_csr(...); scenarios.rogue_csr(fc); scenarios.pending_csr(fc)
    fc.build_outcome["Docker"] = "Failed"; fc.console_up = False; fc.etcd_metrics[...] = ...
    fc.set_faults(error_ratio=0.1, reset_ratio=0.1, seed=1, include_watches=True)  # 5xx / TCP RST
    fc.cut_watches(gone=True); fc.cut_watches_every(2.0)                          # drop watches, 410 on resume
    fc.requests, fc.router_log, fc.binary_uploads                                  # what clients did
"""

from tests.fakekube.cluster import FakeCluster, NodePerf, Timings
from tests.fakekube.server import Faults

__all__ = ["FakeCluster", "Faults", "NodePerf", "Timings"]
