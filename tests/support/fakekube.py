"""Fixture `fake_cluster`: a scripted Kubernetes/OpenShift API server over real HTTPS.

    def test_x(fake_cluster):                # healthy OKD 4.8 cluster, TLS verified, bearer token
        fake_cluster.kubeconfig               # Path: CA + token, for --kubeconfig
        fake_cluster.at(1.0, lambda: fake_cluster.set_node_ready(name, False))
        fake_cluster.set_faults(error_ratio=0.1, reset_ratio=0.1, seed=3)
        fake_cluster.requests                 # request log (method, path, status, fault)

Parametrize indirectly for other states:
    @pytest.mark.parametrize("fake_cluster", ["plain"], indirect=True)   # no OpenShift APIs
    @pytest.mark.parametrize("fake_cluster", ["empty"], indirect=True)   # OpenShift APIs, no objects
"""

from __future__ import annotations

import pytest

from tests.fakekube import FakeCluster
from tests.fakekube import scenarios


@pytest.fixture
def fake_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    kind = getattr(request, "param", "okd")
    if kind not in ("okd", "plain", "empty"):
        raise ValueError(f"fake_cluster param {kind!r}: use 'okd', 'plain' or 'empty'")
    fc = FakeCluster(tmp_path_factory.mktemp("fakekube"), openshift=kind != "plain").start()
    if kind == "okd":
        scenarios.healthy_okd(fc)
    elif kind == "plain":
        scenarios.plain_kubernetes(fc)
    yield fc
    fc.stop()
