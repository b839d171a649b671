"""The fake API server speaks enough Kubernetes for the real clients (kubernetes, its dynamic
client as openshift-client's oc-less paths use it) and serves the captured objects unchanged."""

from __future__ import annotations

import pytest
from kubernetes import client, config, dynamic

from tests.fakekube.objects import real
from tests.fakekube.scenarios import OPERATORS


def _api(fc, token=None, tmp_path=None):
    cfg = client.Configuration()
    path = fc.kubeconfig if token is None else fc.write_kubeconfig(tmp_path / "kc", token=token)
    config.load_kube_config(str(path), client_configuration=cfg)
    return client.ApiClient(cfg)


def test_dynamic_client_discovers_openshift_groups(fake_cluster):
    dyn = dynamic.DynamicClient(_api(fake_cluster))
    cos = dyn.resources.get(api_version="config.openshift.io/v1", kind="ClusterOperator").get()
    served = {co.metadata.name: co.to_dict() for co in cos.items}
    captured = {co["metadata"]["name"]: co for co in real(OPERATORS)}
    assert served.keys() == captured.keys()
    etcd = served["etcd"]
    assert etcd["status"] == captured["etcd"]["status"]  # the real object, not a look-alike
    for kind in ("Build", "BuildConfig", "Route", "MachineConfigPool", "Etcd", "ClusterVersion"):
        assert dyn.resources.search(kind=kind), kind


def test_typed_client_lists_and_watches(fake_cluster):
    v1 = client.CoreV1Api(_api(fake_cluster))
    assert len(v1.list_node().items) == 6
    v1.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    assert v1.read_namespaced_config_map("x", "default").metadata.resource_version


def test_wrong_token_is_refused(fake_cluster, tmp_path):
    v1 = client.CoreV1Api(_api(fake_cluster, token="not-the-token", tmp_path=tmp_path))
    with pytest.raises(client.ApiException) as err:
        v1.list_node()
    assert err.value.status == 401


@pytest.mark.parametrize("fake_cluster", ["plain"], indirect=True)
def test_plain_kubernetes_has_no_openshift_groups(fake_cluster):
    groups = {g.name for g in client.ApisApi(_api(fake_cluster)).get_api_versions().groups}
    assert "certificates.k8s.io" in groups and not any(g.endswith("openshift.io") for g in groups)


def test_router_serves_routes_with_the_ingress_ca_only(fake_cluster):
    import ssl

    import urllib3

    from suites.routes import https_get

    host, addr = fake_cluster.console_host, fake_cluster.ingress_address
    ok = https_get(host, "/", ca_pem=fake_cluster.ingress_ca.cert_pem.decode(), address=addr)
    assert ok.status == 200
    # The API server's CA is not the ingress CA: verification must fail, not be skipped.
    with pytest.raises((urllib3.exceptions.SSLError, ssl.SSLError)):
        https_get(host, "/", ca_pem=fake_cluster.ca.cert_pem.decode(), address=addr)
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        assert https_get(host, "/", ca_pem=None, address=addr, insecure=True).status == 200
    assert https_get(f"nothing.apps.{fake_cluster.domain}", "/", ca_pem=fake_cluster.ingress_ca.cert_pem.decode(),
                     address=addr).status == 503
