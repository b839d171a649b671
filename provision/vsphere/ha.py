"""The vSphere HA configuration of the spec's cluster, as facts for run.json (never changed)."""

from __future__ import annotations

from pyVmomi import vim


def ha_config(cluster: object) -> dict:
    """The cluster's HA settings; {} when it is not a cluster or vCenter does not say."""
    if not isinstance(cluster, vim.ClusterComputeResource):
        return {}
    das = getattr(getattr(cluster, "configurationEx", None), "dasConfig", None)
    return ha_facts(das) if das is not None else {}


def ha_facts(das: vim.cluster.DasConfigInfo) -> dict:
    """enabled, host monitoring, admission control, VM monitoring, restart priority, isolation response."""
    defaults = das.defaultVmSettings
    return {
        "enabled": bool(das.enabled),
        "host_monitoring": das.hostMonitoring,
        "admission_control": bool(das.admissionControlEnabled),
        "vm_monitoring": das.vmMonitoring,
        "restart_priority": getattr(defaults, "restartPriority", None),
        "isolation_response": getattr(defaults, "isolationResponse", None),
    }
