"""machine-config: every MachineConfigPool Updated, not Degraded, all machines updated and ready."""

from __future__ import annotations

import pytest

from suites.kube import condition_is, path_for


def pool_problems(pool: dict) -> list[str]:
    st = pool.get("status") or {}
    out = []
    if not condition_is(pool, "Updated"):
        out.append("not Updated")
    if condition_is(pool, "Degraded"):
        out.append(f"Degraded ({st.get('degradedMachineCount', '?')} degraded machines)")
    total = st.get("machineCount")
    counts = {k: st.get(k) for k in ("updatedMachineCount", "readyMachineCount")}
    if total is None or any(v != total for v in counts.values()):
        out.append(f"machines {total}, updated {counts['updatedMachineCount']}, ready {counts['readyMachineCount']}")
    return out


@pytest.mark.criterion("machine-config")
def test_machine_config(openshift, record, note, fail_with_evidence):
    pools = openshift.list(path_for("machineconfiguration.openshift.io/v1", "machineconfigpools"))
    if not pools:
        fail_with_evidence("no MachineConfigPools", ["machineconfigpools"])
    paused = sorted(p["metadata"]["name"] for p in pools if (p.get("spec") or {}).get("paused"))
    if paused:
        note(f"warning: paused pools {', '.join(paused[:3])}")
    bad = {p["metadata"]["name"]: pool_problems(p) for p in pools}
    bad = {k: v for k, v in bad.items() if v}
    for p in pools:
        record("machineconfig.pool.machines", (p.get("status") or {}).get("machineCount", 0), "count",
               better="higher", pool=p["metadata"]["name"])
    if bad:
        fail_with_evidence("; ".join(f"pool {k}: {', '.join(v)}" for k, v in sorted(bad.items())),
                           [f"machineconfigpool/{k}" for k in sorted(bad)])
