"""CSR approval rules, against real CSR objects from OpenShift/OKD clusters and crafted bad ones."""

from __future__ import annotations

import base64
import ipaddress
import json
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from provision.okd.csr import BOOTSTRAPPER, CLIENT_SIGNER, SERVING_SIGNER, evaluate_csr, node_matches

REAL = Path(__file__).resolve().parent / "data" / "real-objects"


def _load(name: str) -> list[dict]:
    path = REAL / name
    data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    return data["items"]


def _nodes_of(items: list[dict]) -> set[str]:
    return {i["spec"]["username"].removeprefix("system:node:") for i in items
            if i["spec"]["signerName"] == SERVING_SIGNER}


@pytest.mark.parametrize("fname", [
    "certificatesigningrequests_approved-bootstrapper-and-serving_ocp-4.8-aws.yaml",
    "certificatesigningrequests_approved-bootstrapper-and-serving_ocp-4.9-metal.yaml",
    "certificatesigningrequests_approved-bootstrapper-and-serving_okd-4.18-scos.json",
])
def test_real_node_csrs_pass_and_operator_csrs_are_not_ours(fname):
    items = _load(fname)
    nodes = _nodes_of(items)
    for item in items:
        verdict = evaluate_csr(item, nodes)
        signer = item["spec"]["signerName"]
        if signer in (CLIENT_SIGNER, SERVING_SIGNER):
            assert verdict.approve, verdict.reason
            assert verdict.kind == ("client" if signer == CLIENT_SIGNER else "serving")
        else:
            assert not verdict.approve and verdict.kind == "other"


def test_real_csrs_for_another_cluster_are_refused():
    items = _load("certificatesigningrequests_approved-bootstrapper-and-serving_ocp-4.9-metal.yaml")
    verdicts = [evaluate_csr(i, {"master-0.other.example.com", "worker-0.other.example.com"}) for i in items]
    assert not any(v.approve for v in verdicts)
    assert all("not in this cluster" in v.reason for v in verdicts if v.kind != "other")


def test_short_and_fqdn_node_names_are_accepted_consistently():
    items = _load("certificatesigningrequests_approved-bootstrapper-and-serving_ocp-4.9-metal.yaml")
    fqdn = _nodes_of(items)
    short = {n.split(".")[0] for n in fqdn}
    for item in items:
        assert evaluate_csr(item, fqdn).approve == evaluate_csr(item, short).approve
    assert node_matches("master-0.c.example.com", {"master-0"}) == "master-0"
    assert node_matches("master-0", {"master-0.c.example.com"}) == "master-0.c.example.com"
    assert node_matches("master-0.evil.example.com", {"master-0.c.example.com"}) is None
    assert node_matches("master-00", {"master-0"}) is None


# ------------------------------------------------------------------ crafted CSRs

_KEY = ec.generate_private_key(ec.SECP256R1())


def _request(cn: str | None, orgs=("system:nodes",), dns=(), ips=(), emails=()) -> str:
    attrs = []
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    sans += [x509.RFC822Name(e) for e in emails]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    pem = builder.sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    return base64.b64encode(pem).decode()


def _client(cn="system:node:master-0", user=BOOTSTRAPPER, usages=("digital signature", "key encipherment", "client auth"),
            **req) -> dict:
    return {"metadata": {"name": "csr-c"}, "spec": {
        "signerName": CLIENT_SIGNER, "username": user,
        "groups": ["system:serviceaccounts", "system:serviceaccounts:openshift-machine-config-operator", "system:authenticated"],
        "usages": list(usages), "request": _request(cn, **req)}}


def _serving(cn="system:node:master-0", user=None, groups=("system:nodes", "system:authenticated"),
             usages=("digital signature", "key encipherment", "server auth"), **req) -> dict:
    req.setdefault("dns", ["master-0.c1.example.com"])
    req.setdefault("ips", ["198.18.0.11"])
    return {"metadata": {"name": "csr-s"}, "spec": {
        "signerName": SERVING_SIGNER, "username": cn if user is None else user, "groups": list(groups),
        "usages": list(usages), "request": _request(cn, **req)}}


NODES = {"master-0", "master-1", "master-2"}


def test_crafted_good_csrs_pass():
    assert evaluate_csr(_client(), NODES).approve
    assert evaluate_csr(_serving(), NODES).approve


REJECTIONS = [
    ("other signer", {"metadata": {"name": "x"}, "spec": {"signerName": "kubernetes.io/kube-apiserver-client"}},
     "other", "is not a kubelet signer"),
    ("garbage request", {"metadata": {"name": "x"}, "spec": {"signerName": CLIENT_SIGNER, "request": "bm90IGEgY3Ny"}},
     "client", "not a base64 PEM certificate request"),
    ("CN not a node", _client(cn="admin"), "client", "is not system:node:<name>"),
    ("no CN", _client(cn=None), "client", "is not system:node:<name>"),
    ("unknown node", _client(cn="system:node:intruder"), "client", "not in this cluster"),
    ("wrong O", _client(orgs=("system:masters",)), "client", "is not exactly [system:nodes]"),
    ("extra O", _client(orgs=("system:nodes", "system:masters")), "client", "is not exactly [system:nodes]"),
    ("client not bootstrapper", _client(user="system:serviceaccount:default:default"), "client",
     "not the node-bootstrapper service account"),
    ("client with SAN", _client(dns=["master-0"]), "client", "carries subject alternative names"),
    ("client server usage", _client(usages=("server auth",)), "client", "are not client auth"),
    ("serving other requester", _serving(user="system:node:master-1"), "serving", "not by system:node:master-0 itself"),
    ("serving not in nodes group", _serving(groups=("system:authenticated",)), "serving", "not in group system:nodes"),
    ("serving client usage", _serving(usages=("client auth", "server auth")), "serving", "are not server auth"),
    ("serving e-mail SAN", _serving(emails=["a@example.com"]), "serving", "e-mail or URI"),
    ("serving foreign DNS", _serving(dns=["api.c1.example.com"]), "serving", "which is not node master-0"),
]


@pytest.mark.parametrize("label,csr,kind,reason", REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_each_rejection_has_its_own_reason(label, csr, kind, reason):
    verdict = evaluate_csr(csr, NODES)
    assert not verdict.approve
    assert verdict.kind == kind
    assert reason in verdict.reason
    assert "\n" not in verdict.reason


def test_rejection_reasons_are_distinct():
    texts = [r for _, _, _, r in REJECTIONS]
    for _, csr, _, expected in REJECTIONS:
        got = evaluate_csr(csr, NODES).reason
        # the reason names its own rule and no other rule's text
        assert [t for t in dict.fromkeys(texts) if t in got] == [expected], got
