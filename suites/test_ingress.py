"""ingress: the console route answers over HTTPS with its certificate verified (never verify=False)."""

from __future__ import annotations

import ssl

import pytest
import urllib3

from suites.routes import https_get, ingress_ca, route_host


@pytest.mark.criterion("ingress")
def test_console_route(openshift, okdbench_config, suite_options, record, note, fail_with_evidence):
    host = route_host(openshift, "openshift-console", "console")
    if not host:
        fail_with_evidence("route openshift-console/console not found", ["ns/openshift-console", "clusteroperator/console"])
    ca = ingress_ca(openshift)
    if not ca:
        note("no default-ingress-cert CA published; trusting the system CAs only")
    try:
        ans = https_get(host, "/", ca_pem=ca, address=suite_options.ingress_address, insecure=okdbench_config.insecure)
    except (urllib3.exceptions.SSLError, ssl.SSLError) as exc:
        fail_with_evidence(f"https://{host}/: TLS verification failed ({str(exc).splitlines()[0][:160]})",
                           ["clusteroperator/ingress", "clusteroperator/console"])
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        where = f" via {suite_options.ingress_address}" if suite_options.ingress_address else ""
        fail_with_evidence(f"https://{host}/{where}: unreachable ({type(exc).__name__}); check DNS for *.apps or pass --ingress-address",
                           ["clusteroperator/ingress", "clusteroperator/console"])
    record("ingress.console.latency", ans.elapsed_s * 1000, "ms", host=host)
    if not 200 <= ans.status < 400:
        fail_with_evidence(f"https://{host}/ answered HTTP {ans.status}", ["clusteroperator/ingress", "clusteroperator/console"])
