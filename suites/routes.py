"""Reach routes (*.apps) over HTTPS the way a user's browser would: the cluster's ingress CA (and
the system's) trusted, the route's host name verified; never verify=False unless --insecure."""

from __future__ import annotations

import json
import logging
import ssl
import time
from dataclasses import dataclass

import urllib3

from suites.kube import Kube, path_for

log = logging.getLogger("okdbench.routes")


@dataclass
class HttpsAnswer:
    status: int
    body: bytes
    elapsed_s: float


def route_host(kube: Kube, namespace: str, name: str) -> str | None:
    route = kube.get_or_none(path_for("route.openshift.io/v1", "routes", namespace, name))
    return (route or {}).get("spec", {}).get("host")


def ingress_ca(kube: Kube) -> str | None:
    """The default ingress certificate's CA, published by the ingress operator."""
    cm = kube.get_or_none(path_for("v1", "configmaps", "openshift-config-managed", "default-ingress-cert"))
    return ((cm or {}).get("data") or {}).get("ca-bundle.crt")


def https_get(host: str, path: str, *, ca_pem: str | None, address: str | None = None, token: str | None = None,
              insecure: bool = False, timeout_s: float = 15.0) -> HttpsAnswer:
    """GET https://host/path. address (HOST[:PORT]) replaces DNS resolution of host; SNI and
    certificate checks still use host."""
    ctx = ssl.create_default_context()
    if ca_pem:
        ctx.load_verify_locations(cadata=ca_pem)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    connect_host, port = host, 443
    if address:
        if address.startswith("["):
            connect_host, _, rest = address[1:].partition("]")
            p = rest.lstrip(":")
        else:
            connect_host, _, p = address.partition(":")
        port = int(p) if p else 443
    pool = urllib3.HTTPSConnectionPool(connect_host, port, ssl_context=ctx, server_hostname=host,
                                       assert_hostname=False if insecure else host,
                                       timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s), retries=False)
    headers = {"Host": host}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    start = time.perf_counter()
    try:
        resp = pool.request("GET", path, headers=headers, redirect=False)
        return HttpsAnswer(resp.status, resp.data, time.perf_counter() - start)
    finally:
        pool.close()


def prometheus_query(kube: Kube, query: str, *, address: str | None, insecure: bool) -> list[dict]:
    """Instant query against thanos-querier (needs a bearer token in the kubeconfig)."""
    return prometheus_querier(kube, address=address, insecure=insecure)(query, None)


def prometheus_querier(kube: Kube, *, address: str | None, insecure: bool):
    """query(promql, at) -> result vector: thanos-querier's route, CA and token looked up once."""
    host = route_host(kube, "openshift-monitoring", "thanos-querier")
    if not host:
        raise LookupError("route openshift-monitoring/thanos-querier not found")
    if not kube.token:
        raise LookupError("the kubeconfig has no bearer token (client certificates do not open thanos-querier)")
    return https_querier(host, ca_pem=ingress_ca(kube), token=kube.token, address=address, insecure=insecure)


def https_querier(host: str, *, ca_pem: str | None, token: str | None, address: str | None = None, insecure: bool = False):
    """query(promql, at) against Prometheus' HTTP API at https://host (at: Unix seconds, None = now)."""
    from urllib.parse import urlencode

    def query(promql: str, at: float | None = None) -> list[dict]:
        params = {"query": promql} | ({"time": f"{at:.3f}"} if at is not None else {})
        ans = https_get(host, "/api/v1/query?" + urlencode(params), ca_pem=ca_pem, address=address, token=token,
                        insecure=insecure)
        if ans.status != 200:
            raise LookupError(f"Prometheus at {host} answered HTTP {ans.status}")
        doc = json.loads(ans.body)
        return doc.get("data", {}).get("result", [])

    return query
