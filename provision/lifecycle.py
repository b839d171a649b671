"""Stand up and tear down a cluster from its spec, on whichever platform the spec names."""

from __future__ import annotations

import logging
from pathlib import Path

from plumbing import redact
from provision.okd import installer as okd
from provision.base import ProvisionResult, platform_module
from provision.spec import ClusterSpec

log = logging.getLogger(__name__)


def provision_cluster(spec: ClusterSpec, workdir: Path, *, insecure: bool = False,
                      regenerate_ignition: bool = False) -> ProvisionResult:
    """fcos: ignition -> VMs -> OKD install to completion. testguest: VMs only (no OKD)."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    platform = platform_module(spec.platform)
    if spec.okd.guest == "testguest":
        return platform.provision(spec, workdir, insecure=insecure)
    okd.create_ignition_configs(spec, workdir, regenerate=regenerate_ignition)
    try:
        result = platform.provision(spec, workdir, insecure=insecure)
        log.info("VMs up in %.1f s; driving the OKD install", result.timings.get("provision.vms.duration", 0.0))
        result = okd.complete_install(spec, platform, workdir, result, insecure=insecure)
    except BaseException:
        # The VMs stay for post-mortem (serial logs, must-gather); say how to remove them, and what secret files stay.
        log.error("install failed; VMs of %s are kept for inspection: `okdbench destroy --spec %s` removes them",
                  spec.name, spec.source or "SPEC")
        okd.report_leftovers(workdir)
        raise
    # Every node has joined: the ignition (pull secret, initial certificates) is no longer needed on the hypervisor.
    try:
        platform.clear_ignition(spec, insecure=insecure)
    except Exception as exc:  # the cluster is installed; say what is left rather than fail the run
        result.findings.append(f"ignition left on the hypervisor ({type(exc).__name__}: {redact.redact_text(exc)}); "
                               "`okdbench audit --spec` shows where")
        log.warning("clear ignition: %s", result.findings[-1])
    return result


def destroy_cluster(spec: ClusterSpec, *, insecure: bool = False) -> list[str]:
    """Remove what provisioning created for this spec; returns what was removed (idempotent)."""
    return platform_module(spec.platform).destroy(spec, insecure=insecure)
