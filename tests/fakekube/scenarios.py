"""Ready-made cluster states built from the captured objects, plus the scripted changes tests reuse.

healthy_okd: the 4.8 AWS must-gather cluster (3 masters, 3 workers): all operators healthy,
install Completed, pools Updated, etcd quorate, registry Managed on S3, approved CSRs only.
Nodes start NotReady and turn Ready shortly after start; a new node's CSR appears and is
approved by the machine approver, as after an install.
"""

from __future__ import annotations

from tests.fakekube.cluster import FakeCluster
from tests.fakekube.controllers import set_condition

NODES = "nodes_ready_ocp-4.8-aws.yaml"
OPERATORS = "clusteroperators_healthy_ocp-4.8-aws.yaml"
VERSION = "clusterversion_completed_ocp-4.8-aws.yaml"
CSRS = "certificatesigningrequests_approved-bootstrapper-and-serving_ocp-4.8-aws.yaml"
POOLS = "machineconfigpools_healthy_ocp-4.8-aws.yaml"
ETCD = "etcd_members-available_ocp-4.8-aws.yaml"
REGISTRY = "imageregistry-config_managed-s3_ocp-4.8-aws.yaml"

BOOTSTRAPPER = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"


def node_names(fc: FakeCluster, role: str | None = None) -> list[str]:
    sel = f"node-role.kubernetes.io/{role}" if role else ""
    return [n["metadata"]["name"] for n in fc.list("nodes", label_selector=sel)]


def _not_ready(node: dict) -> None:
    set_condition(node, "Ready", "False", "KubeletNotReady", "container runtime network not ready: NetworkReady=false")


def load_nodes(fc: FakeCluster, ready_after_s: float | None = 0.3) -> list[str]:
    """The captured nodes; with ready_after_s they start NotReady and turn Ready on a staggered clock."""
    nodes = fc.load(NODES, mutate=_not_ready if ready_after_s is not None else None)
    names = [n["metadata"]["name"] for n in nodes]
    if ready_after_s is not None:
        for i, name in enumerate(names):
            fc.at(ready_after_s + 0.05 * i, lambda name=name: fc.set_node_ready(name, True))
    return names


def system_pods(fc: FakeCluster) -> None:
    """Pods in openshift-* namespaces for the soak to watch (etcd per master, dns per node)."""
    for name in node_names(fc, "master"):
        fc.apply({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": f"etcd-{name}", "namespace": "openshift-etcd", "labels": {"app": "etcd", "etcd": "true"}},
                  "spec": {"nodeName": name, "containers": [{"name": "etcd", "image": "quay.io/openshift/okd-content@sha256:etcd"}]}})
    for name in node_names(fc):
        fc.apply({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": f"dns-default-{name.split('.')[0][-5:]}", "namespace": "openshift-dns",
                               "labels": {"dns.operator.openshift.io/daemonset-dns": "default"}},
                  "spec": {"nodeName": name, "containers": [{"name": "dns", "image": "quay.io/openshift/okd-content@sha256:dns"}]}})


def ingress(fc: FakeCluster) -> None:
    fc.apply({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "default-ingress-cert", "namespace": "openshift-config-managed"},
              "data": {"ca-bundle.crt": fc.ingress_ca.cert_pem.decode()}})
    for ns, name, host, svc in (
        ("openshift-console", "console", fc.console_host, "console"),
        ("openshift-monitoring", "thanos-querier", fc.thanos_host, "thanos-querier"),
    ):
        fc.apply({"apiVersion": "route.openshift.io/v1", "kind": "Route",
                  "metadata": {"name": name, "namespace": ns},
                  "spec": {"host": host, "port": {"targetPort": "https"},
                           "tls": {"insecureEdgeTerminationPolicy": "Redirect", "termination": "reencrypt"},
                           "to": {"kind": "Service", "name": svc, "weight": 100}, "wildcardPolicy": "None"},
                  "status": {"ingress": [{"host": host, "routerName": "default", "wildcardPolicy": "None",
                                          "routerCanonicalHostname": f"router-default.apps.{fc.domain}",
                                          "conditions": [{"type": "Admitted", "status": "True"}]}]}})


def healthy_okd(fc: FakeCluster, *, ready_after_s: float | None = 0.3) -> FakeCluster:
    load_nodes(fc, ready_after_s)
    fc.load(OPERATORS)
    fc.load(VERSION)
    fc.load(CSRS)
    fc.load(POOLS)
    fc.load(ETCD)
    fc.load(REGISTRY)
    for ns in ("openshift-etcd", "openshift-dns", "openshift-image-registry", "openshift-config-managed", "openshift",
               "kube-system", "default"):
        fc.ensure_namespace(ns)
    ingress(fc)
    system_pods(fc)
    # After an install, a late node's client CSR shows up and the machine approver signs it.
    worker = node_names(fc, "worker")[0]
    fc.at(0.2, lambda: fc.add_csr(name="csr-late1", username=BOOTSTRAPPER, groups=["system:serviceaccounts",
          "system:serviceaccounts:openshift-machine-config-operator", "system:authenticated"],
          signer="kubernetes.io/kube-apiserver-client-kubelet", cn=f"system:node:{worker}", org="system:nodes"))
    fc.at(0.6, lambda: fc.patch("certificatesigningrequests", "csr-late1", lambda o: set_condition(
        o, "Approved", "True", "NodeCSRApprove", "This CSR was approved by the Node CSR Approver", update_key="lastUpdateTime")))
    return fc


def plain_kubernetes(fc: FakeCluster, *, ready_after_s: float | None = 0.3) -> FakeCluster:
    """A Kubernetes cluster without OpenShift APIs: same nodes and CSRs, nothing else."""
    assert not fc.openshift
    load_nodes(fc, ready_after_s)
    fc.load(CSRS)
    for ns in ("kube-system", "default"):
        fc.ensure_namespace(ns)
    return fc


# ------------------------------------------------------------ scripted trouble


def rogue_csr(fc: FakeCluster, name: str = "csr-rogue") -> dict:
    """An approved kubelet-serving CSR that a workload's service account submitted for a master."""
    master = node_names(fc, "master")[0]
    return fc.add_csr(name=name, username="system:serviceaccount:default:builder",
                      groups=["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"],
                      signer="kubernetes.io/kubelet-serving", cn=f"system:node:{master}", org="system:nodes",
                      dns=[master], approved="KubectlApprove")


def pending_csr(fc: FakeCluster, name: str = "csr-pending") -> dict:
    return fc.add_csr(name=name, username=BOOTSTRAPPER, groups=["system:serviceaccounts", "system:authenticated"],
                      signer="kubernetes.io/kube-apiserver-client-kubelet", cn="system:node:worker-9", org="system:nodes")


DEGRADED_OPERATORS = "clusteroperators_degraded-etcd-kas-kcm-ks_unavailable-cpms_ocp-4.14.1.yaml"
FAILING_VERSION = "clusterversion_failing-progressing_ocp-4.14.0-rc.3-to-4.14.1.yaml"
DEGRADED_POOLS = "machineconfigpools_worker-degraded-updating_ocp-4.16-build0.yaml"


def degraded_okd(fc: FakeCluster) -> FakeCluster:
    """A cluster in trouble: the stalled 4.14.1 update (degraded etcd/KAS/KCM/KS operators, Failing
    ClusterVersion), a degraded worker pool, the registry Removed as on UPI, a rogue approved CSR
    and a pending one, slow etcd disks, a console that answers 503 and Docker builds that fail."""
    load_nodes(fc, ready_after_s=None)
    fc.load(DEGRADED_OPERATORS)
    fc.load(FAILING_VERSION)
    fc.load(CSRS)
    fc.load(DEGRADED_POOLS)
    fc.load(ETCD)
    fc.load(REGISTRY, mutate=lambda cfg: cfg["spec"].update(managementState="Removed"))
    for ns in ("openshift-etcd", "openshift-dns", "openshift-config-managed", "kube-system", "default"):
        fc.ensure_namespace(ns)
    ingress(fc)
    system_pods(fc)
    rogue_csr(fc)
    pending_csr(fc)
    fc.console_up = False
    fc.etcd_metrics.update(wal_fsync_p99_s=0.025, leader_changes=2.0)
    fc.build_outcome["Docker"] = "Failed"
    return fc
