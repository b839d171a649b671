"""registry: the image registry is Managed, has storage and is Available (builds push to it)."""

from __future__ import annotations

import pytest

from suites.kube import condition_is, path_for


@pytest.mark.criterion("registry")
def test_registry(openshift, record, note, fail_with_evidence):
    cfg = openshift.get_or_none(path_for("imageregistry.operator.openshift.io/v1", "configs", name="cluster"))
    if cfg is None:
        fail_with_evidence("image registry config 'cluster' not found", ["configs.imageregistry.operator.openshift.io"])
    spec = cfg.get("spec") or {}
    state = spec.get("managementState", "?")
    backends = sorted(k for k, v in (spec.get("storage") or {}).items() if k != "managementState" and v is not None)
    note(f"{state}, storage {backends[0] if backends else 'none'}, {spec.get('replicas', '?')} replicas")
    record("registry.replicas", (cfg.get("status") or {}).get("readyReplicas", spec.get("replicas", 0)) or 0, "count",
           better="higher", storage=backends[0] if backends else "none", state=state)
    objects = ["configs.imageregistry.operator.openshift.io/cluster", "clusteroperator/image-registry"]
    if state != "Managed":
        fail_with_evidence(f"image registry is {state} (UPI installs start Removed): set managementState Managed "
                           "and give it storage, or builds cannot push", objects)
    if not backends:
        fail_with_evidence("image registry is Managed but has no storage configured (spec.storage)", objects)
    if not condition_is(cfg, "Available"):
        fail_with_evidence("image registry is Managed but not Available", objects)
