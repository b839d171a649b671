"""Disruptions of a vSphere VM through govmomi's simulator: power, suspend/resume, reset, reboot,
vMotion between the cluster's hosts, and the cluster's HA configuration as a fact."""

from __future__ import annotations

import pytest
from pyVmomi import vim

from provision import base
from provision.spec import parse_spec
from provision.vsphere import platform as vsphere
from provision.vsphere.ha import ha_facts
from provision.vsphere.power import PowerError
from tests.support.vcsim import vsphere_spec_data, wait_task

pytestmark = pytest.mark.needs_vcsim

VM = "DC0_C0_RP0_VM0"  # a powered-on VM of the simulator's cluster DC0_C0 (hosts DC0_C0_H0..H2)


@pytest.fixture
def sim(vcsim_fresh, monkeypatch):
    monkeypatch.setenv("VSPHERE_USERNAME", vcsim_fresh.username)
    monkeypatch.setenv("VSPHERE_PASSWORD", vcsim_fresh.password)
    return vcsim_fresh


def _spec(sim):
    return parse_spec(vsphere_spec_data(sim, name="resilience16"))


def _vm(sim):
    si = sim.connect()
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
    try:
        return next(v for v in view.view if v.name == VM)
    finally:
        view.Destroy()


def test_power_suspend_reset_cycle_as_vcenter_sees_it(sim):
    spec = _spec(sim)
    assert base.state(spec, VM) == "running"
    base.pause(spec, VM)
    assert _vm(sim).runtime.powerState == "suspended" and base.state(spec, VM) == "paused"
    assert base.pause(spec, VM) == 0.0
    assert base.restore(spec, VM) == "resumed"
    assert _vm(sim).runtime.powerState == "poweredOn"
    base.reset(spec, VM)
    assert base.state(spec, VM) == "running"
    base.power_off(spec, VM)
    assert _vm(sim).runtime.powerState == "poweredOff"
    assert base.power_off(spec, VM) == 0.0
    base.power_on(spec, VM)
    assert _vm(sim).runtime.powerState == "poweredOn"
    assert base.restore(spec, VM) == "nothing (running)"


def test_reset_of_a_powered_off_vm_is_one_line_naming_vm_and_phase(sim):
    spec = _spec(sim)
    base.power_off(spec, VM)
    with pytest.raises(PowerError) as err:
        base.reset(spec, VM)
    msg = str(err.value)
    assert msg.startswith(f"vsphere reset of {VM}: ") and "InvalidPowerState" in msg and "\n" not in msg


def test_guest_reboot_without_tools_is_one_line(sim):
    with pytest.raises(PowerError) as err:
        base.reboot(_spec(sim), VM)
    msg = str(err.value)
    assert msg.startswith(f"vsphere guest reboot of {VM}: vCenter refused") and "\n" not in msg


def test_missing_vm_is_one_line(sim):
    with pytest.raises(PowerError, match=r"^vsphere power-off of resilience16-worker-9: no such VM in /DC0"):
        base.power_off(_spec(sim), "resilience16-worker-9")


def test_vmotion_moves_the_running_vm_to_another_host_of_the_cluster(sim):
    spec = _spec(sim)
    source = _vm(sim).runtime.host.name
    dest = next(h for h in ("DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2") if h != source)
    moved = base.migrate(spec, VM, dest)
    assert moved.source == source and moved.dest == dest and moved.duration_s >= 0
    vm = _vm(sim)
    assert vm.runtime.host.name == dest and vm.runtime.powerState == "poweredOn"
    with pytest.raises(PowerError, match=f"already runs on {dest}"):
        base.migrate(spec, VM, dest)
    with pytest.raises(PowerError) as err:
        base.migrate(spec, VM, "esxi-elsewhere")
    assert "host 'esxi-elsewhere' is not in cluster /DC0/host/DC0_C0 (it has: DC0_C0_H0, DC0_C0_H1, DC0_C0_H2)" in str(err.value)


def test_ha_configuration_is_a_hypervisor_fact(sim):
    # The simulator's cluster has HA unset (and ignores dasConfig reconfiguration): a fact, off.
    ha = vsphere.hypervisor_facts(_spec(sim))["ha"]
    assert ha["enabled"] is False and ha["host_monitoring"] is None
    das = vim.cluster.DasConfigInfo(enabled=True, hostMonitoring="enabled", admissionControlEnabled=True,
                                    vmMonitoring="vmMonitoringDisabled",
                                    defaultVmSettings=vim.cluster.DasVmSettings(restartPriority="medium"))
    assert ha_facts(das) == {"enabled": True, "host_monitoring": "enabled", "admission_control": True,
                             "vm_monitoring": "vmMonitoringDisabled", "restart_priority": "medium",
                             "isolation_response": None}
