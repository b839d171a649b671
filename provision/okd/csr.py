"""Which node CSRs may be approved: the checks the OpenShift docs ask for, as a pure function.

Every well-known OKD installer script approves all pending CSRs blindly; that lets any pod able to
create a CSR obtain a node identity. The rules here follow "Approving the certificate signing
requests for your machines" (OpenShift docs) and Kubernetes' own kubelet CSR approver:

client CSR  (a new node joining)
    signerName  kubernetes.io/kube-apiserver-client-kubelet
    username    system:serviceaccount:openshift-machine-config-operator:node-bootstrapper
    subject     CN=system:node:<node of this cluster>, O=system:nodes, no SANs
    usages      client auth (+ digital signature, key encipherment)
serving CSR (the kubelet's serving certificate)
    signerName  kubernetes.io/kubelet-serving
    username    == CN == system:node:<node of this cluster>; groups include system:nodes
    subject     O=system:nodes; DNS SANs name that node only; no e-mail/URI SANs
    usages      server auth (+ digital signature, key encipherment)

Node names may be given short (master-0) or fully qualified (master-0.c1.example.com). A short
name stands for that host in any domain; a fully qualified name matches only itself or its bare
short form. The same rule applies to CNs and DNS SANs.

Anything else is `approve=False` with one distinct reason; `kind` says what the CSR is, so callers
can tell "not a node CSR, not ours" (kind 'other') from "a node CSR that fails the rules".
This module imports only `cryptography`: the suites reuse it to audit already-approved CSRs.
"""

from __future__ import annotations

import base64
import binascii
import warnings
from dataclasses import dataclass
from typing import Any, Iterable

from cryptography import x509
from cryptography.x509.oid import NameOID

CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
BOOTSTRAPPER = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"
NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"

_CLIENT_USAGES = {"digital signature", "key encipherment", "client auth"}
_SERVING_USAGES = {"digital signature", "key encipherment", "server auth"}


@dataclass(frozen=True)
class CsrVerdict:
    approve: bool
    kind: str  # 'client' | 'serving' | 'other'
    reason: str  # one line


def _short(name: str) -> str:
    return name.split(".", 1)[0]


def node_matches(candidate: str, node_names: Iterable[str]) -> str | None:
    """The entry of node_names that `candidate` names, or None (see module docstring for the rule)."""
    candidate = candidate.lower().rstrip(".")
    if not candidate:
        return None
    for name in node_names:
        name = name.lower().rstrip(".")
        if candidate == name:
            return name
        if "." not in name and _short(candidate) == name:
            return name
        if "." not in candidate and candidate == _short(name):
            return name
    return None


def _parse_request(request: Any) -> x509.CertificateSigningRequest | None:
    if not isinstance(request, str) or not request:
        return None
    try:
        pem = base64.b64decode(request, validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        return x509.load_pem_x509_csr(pem)
    except ValueError:
        return None


def _attrs(name: x509.Name, oid) -> list[str]:
    # CNs of FQDN nodes exceed X.509's 64-character bound (cryptography warns); Kubernetes accepts them.
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


def _reject(kind: str, reason: str) -> CsrVerdict:
    return CsrVerdict(False, kind, reason)


def evaluate_csr(csr: dict, node_names: set[str]) -> CsrVerdict:
    """Decide on one CertificateSigningRequest object (as a dict from the API or `oc get -o json`)."""
    spec = csr.get("spec") or {}
    name = (csr.get("metadata") or {}).get("name", "?")
    signer = spec.get("signerName") or ""
    if signer == CLIENT_SIGNER:
        kind = "client"
    elif signer == SERVING_SIGNER:
        kind = "serving"
    else:
        return _reject("other", f"{name}: signer {signer or '(none)'} is not a kubelet signer; not a node CSR")

    req = _parse_request(spec.get("request"))
    if req is None:
        return _reject(kind, f"{name}: spec.request is not a base64 PEM certificate request")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # see _parse_request: long CNs warn when the subject is read
        cns = _attrs(req.subject, NameOID.COMMON_NAME)
        orgs = _attrs(req.subject, NameOID.ORGANIZATION_NAME)
    if len(cns) != 1 or not cns[0].startswith(NODE_PREFIX):
        return _reject(kind, f"{name}: subject CN {cns!r} is not system:node:<name>")
    cn = cns[0]
    node = node_matches(cn[len(NODE_PREFIX):], node_names)
    if node is None:
        return _reject(kind, f"{name}: CN {cn} names a node that is not in this cluster")
    if orgs != [NODES_GROUP]:
        return _reject(kind, f"{name}: subject O {orgs!r} is not exactly [system:nodes]")
    try:
        san = req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    usages = set(spec.get("usages") or [])
    username = spec.get("username") or ""
    groups = set(spec.get("groups") or [])

    if kind == "client":
        if username != BOOTSTRAPPER:
            return _reject(kind, f"{name}: client CSR requested by {username or '(nobody)'}, not the node-bootstrapper service account")
        if san is not None and len(list(san)) > 0:
            return _reject(kind, f"{name}: client CSR carries subject alternative names; kubelet client certificates have none")
        if "client auth" not in usages or not usages <= _CLIENT_USAGES:
            return _reject(kind, f"{name}: client CSR usages {sorted(usages)} are not client auth (+ digital signature, key encipherment)")
        return CsrVerdict(True, kind, f"{name}: kubelet client CSR from node-bootstrapper for node {node}")

    if username != cn:
        return _reject(kind, f"{name}: serving CSR requested by {username or '(nobody)'}, not by {cn} itself")
    if NODES_GROUP not in groups:
        return _reject(kind, f"{name}: serving CSR requester is not in group system:nodes")
    if "server auth" not in usages or not usages <= _SERVING_USAGES:
        return _reject(kind, f"{name}: serving CSR usages {sorted(usages)} are not server auth (+ digital signature, key encipherment)")
    if san is not None:
        if san.get_values_for_type(x509.RFC822Name) or san.get_values_for_type(x509.UniformResourceIdentifier):
            return _reject(kind, f"{name}: serving CSR asks for e-mail or URI names")
        for dns in san.get_values_for_type(x509.DNSName):
            if node_matches(dns, {node}) is None:
                return _reject(kind, f"{name}: serving CSR asks for DNS name {dns}, which is not node {node}")
    return CsrVerdict(True, kind, f"{name}: kubelet serving CSR from node {node} for itself")
