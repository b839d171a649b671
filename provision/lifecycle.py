"""Stand up and tear down a cluster from its spec, on whichever platform the spec names."""

from __future__ import annotations

import logging
from pathlib import Path

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
        return okd.complete_install(spec, platform, workdir, result, insecure=insecure)
    except BaseException:
        # The VMs stay for post-mortem (serial logs, must-gather); say how to remove them, and what secret files stay.
        log.error("install failed; VMs of %s are kept for inspection: `okdbench destroy --spec %s` removes them",
                  spec.name, spec.source or "SPEC")
        okd.report_leftovers(workdir)
        raise


def destroy_cluster(spec: ClusterSpec, *, insecure: bool = False) -> list[str]:
    """Remove what provisioning created for this spec; returns what was removed (idempotent)."""
    return platform_module(spec.platform).destroy(spec, insecure=insecure)
