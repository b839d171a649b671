"""The opt-in HA restart on vSphere: spec opt-in, preconditions on real simulator objects, the host
failure and its measurement through vCenter's change notifications, and the host's return.

govmomi's simulator (0.24, Debian) has no vSphere HA: nothing restarts a VM when a host fails. Its
HA switch (dasConfig.enabled) and host reboot/shutdown come from tests/vcsim/hostfail.go. Where HA's
restart is needed, the test itself plays HA through the real vSphere API from another thread: once
it sees the host stop responding it waits HA_DELAY_S, then powers the VM off, relocates it to
another host and powers it on, as HA's primary host would. provision/vsphere/ha.py does not know
that: it sees only what vCenter reports.
"""

from __future__ import annotations

import threading
import time

import pytest
from pyVmomi import vim

from provision import base
from provision.kvm import ha as kvm_ha
from provision.spec import SpecError, parse_spec
from provision.vsphere import ha
from provision.vsphere.power import PowerError
from suites.resilience import Outcome, problems
from tests.support.vcsim import vsphere_spec_data, wait_task

VM = "DC0_C0_RP0_VM0"  # runs on DC0_C0_H1 in the simulator's inventory
OTHER = "DC0_C0_RP0_VM1"  # on DC0_C0_H0: a VM of no okdbench cluster
HOSTS = ("DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2")
HA_DELAY_S = 0.5
STALL_S = 30.0  # the test's HA acts within HA_DELAY_S of seeing the host down; 30 s of silence is a bug


def _ha(host: str = "DC0_C0_H1", how: str = "shutdown") -> dict:
    return {"disruptions": ["ha-restart"], "ha_restart": {"host": host, "how": how}}


def _spec(sim, **resilience):
    data = vsphere_spec_data(sim, name="ha16")
    if resilience:
        data["resilience"] = resilience
    return parse_spec(data)


def _objects(si, kind) -> dict:
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [kind], True)
    try:
        return {o.name: o for o in view.view}
    finally:
        view.Destroy()


@pytest.fixture
def ha_sim(vcsim_ha, monkeypatch):
    monkeypatch.setenv("VSPHERE_USERNAME", vcsim_ha.username)
    monkeypatch.setenv("VSPHERE_PASSWORD", vcsim_ha.password)
    return vcsim_ha


# ------------------------------------------------------------------ spec


def _spec_data(platform: str = "vsphere", **resilience) -> dict:
    data = {"name": "ha16", "base_domain": "example.test", "platform": platform,
            "network": {"machine_cidr": "198.18.16.0/24"}, "okd": {"guest": "testguest"},
            "nodes": [{"role": "worker", "count": 1, "vcpu": 1, "memory": "1GiB", "disk": "1GiB"}],
            "resilience": resilience}
    if platform == "vsphere":
        data["vsphere"] = {"host": "vc.example.test", "datacenter": "DC0", "cluster": "C0", "datastore": "ds",
                           "network": "net", "template": "tpl"}
    else:
        data["kvm"] = {"uri": "test:///default", "kernel": "/k", "initrd": "/i"}
    return data


@pytest.mark.parametrize("resilience, expected", [
    ({"disruptions": ["ha-restart"]},
     ("resilience.disruptions: ha-restart fails an ESXi host and needs the explicit opt-in resilience.ha_restart: "
      "{host: <ESXi host>, how: reboot|shutdown}; add it, or remove ha-restart")),
    ({"ha_restart": {"host": "esx-03.example"}},
     "resilience.ha_restart: host esx-03.example is named but ha-restart is not in resilience.disruptions"),
    ({"disruptions": ["ha-restart"], "ha_restart": {"host": "any"}}, "resilience.ha_restart.host"),
    ({"disruptions": ["ha-restart"], "ha_restart": {"how": "reboot"}}, "resilience.ha_restart.host"),
    ({"disruptions": ["ha-restart"], "ha_restart": {"host": "esx-03", "how": "crash"}}, "resilience.ha_restart.how"),
])
def test_ha_restart_needs_an_explicit_opt_in_naming_one_host(resilience, expected):
    with pytest.raises(SpecError) as err:
        parse_spec(_spec_data(**resilience))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_ha_restart_opt_in_parses_and_is_vsphere_only():
    spec = parse_spec(_spec_data(disruptions=["reset", "ha-restart"], ha_restart={"host": "esx-03.example"}))
    assert spec.resilience.ha_restart.host == "esx-03.example" and spec.resilience.ha_restart.how == "reboot"
    with pytest.raises(SpecError, match=r"resilience.disruptions: ha-restart is vSphere only \(libvirt has no HA"):
        parse_spec(_spec_data("kvm", disruptions=["ha-restart"], ha_restart={"host": "kvm-2"}))
    kvm = parse_spec(_spec_data("kvm"))
    with pytest.raises(kvm_ha.Unsupported, match=r"^kvm ha-restart of ha16-worker-0: not supported on kvm: libvirt has no HA; use pacemaker"):
        base.ha_restart(kvm, "ha16-worker-0", "kvm-2", "reboot")


def test_restart_threshold_flags_a_late_restart():
    spec = parse_spec(_spec_data())
    out = Outcome(disruption="ha-restart", node="w0", vm="vm0", t0=0.0, restart_s=150.0)
    assert out.metrics()["restart_s"] == (150.0, "s")
    assert problems(out, spec.resilience.thresholds) == [
        "ha-restart of w0: vSphere HA ran the VM again after 150 s (limit 120 s)"]
    out.restart_s = 40.0
    assert problems(out, spec.resilience.thresholds) == []


def test_report_names_the_disruption_and_its_measure_in_both_languages():
    from reports import resilience as section
    from reports.i18n import language

    assert section.disruption_name("ha-restart") == "host failure with HA restart"
    fr = language("fr")
    assert section.disruption_name("ha-restart", fr) == "panne d'hôte avec redémarrage HA"
    assert fr.gettext(section.MEASURE_NAMES["restart_s"]) == "délai avant que HA relance la VM"
    assert section.split_metric("resilience.ha-restart.restart_s") == ("ha-restart", "restart_s")


# ------------------------------------------------------------------ preconditions on real objects


def _host_states(si) -> dict:
    return {n: h.runtime.connectionState for n, h in _objects(si, vim.HostSystem).items() if n in HOSTS}


@pytest.mark.needs_vcsim
def test_ha_off_is_refused_and_nothing_is_touched(vcsim_fresh, monkeypatch):
    monkeypatch.setenv("VSPHERE_USERNAME", vcsim_fresh.username)
    monkeypatch.setenv("VSPHERE_PASSWORD", vcsim_fresh.password)
    with pytest.raises(ha.Refused) as err:
        base.ha_restart(_spec(vcsim_fresh, **_ha()), VM, "DC0_C0_H1", "shutdown")
    assert str(err.value) == (f"vsphere ha-restart of {VM} (host DC0_C0_H1, preconditions): vSphere HA is off in cluster "
                              "/DC0/host/DC0_C0 (dasConfig.enabled false); turn HA on, or remove ha-restart from "
                              "resilience.disruptions")
    assert set(_host_states(vcsim_fresh.connect()).values()) == {"connected"}


@pytest.mark.needs_vcsim
def test_preconditions_refuse_in_one_line_each(ha_sim):
    si = ha_sim.connect()
    spec = _spec(ha_sim, **_ha())
    cluster = si.content.searchIndex.FindByInventoryPath("DC0/host/DC0_C0")
    hosts, vms = _objects(si, vim.HostSystem), _objects(si, vim.VirtualMachine)

    def refused(host: str) -> str:
        with pytest.raises(ha.Refused) as err:  # stall_s: should a check let it through, fail fast
            ha.ha_restart(spec, VM, host, "shutdown", stall_s=2)
        msg = str(err.value)
        assert msg.startswith(f"vsphere ha-restart of {VM} (host {host}, preconditions): ") and "\n" not in msg
        assert set(_host_states(si).values()) == {"connected"}, "a refused host failure changed a host"
        return msg.split("preconditions): ", 1)[1]

    assert refused("esx-nope").startswith("host 'esx-nope' is not in cluster /DC0/host/DC0_C0 (it has: DC0_C0_H0, "
                                          "DC0_C0_H1, DC0_C0_H2)")
    assert refused("DC0_C0_H0") == (f"{VM} runs on DC0_C0_H1, not on DC0_C0_H0; vMotion it to DC0_C0_H0 first, "
                                    "or name DC0_C0_H1 in resilience.ha_restart.host")

    override = vim.cluster.DasVmConfigSpec(operation="add", info=vim.cluster.DasVmConfigInfo(
        key=vms[VM], dasSettings=vim.cluster.DasVmSettings(restartPriority="disabled")))
    wait_task(cluster.ReconfigureComputeResource_Task(vim.cluster.ConfigSpecEx(dasVmConfigSpec=[override]), True))
    assert refused("DC0_C0_H1").startswith(f"HA restart priority of {VM} is disabled")
    # Back to the cluster's default (the simulator panics on an override's removal, so: an edit).
    wait_task(cluster.ReconfigureComputeResource_Task(vim.cluster.ConfigSpecEx(dasVmConfigSpec=[
        vim.cluster.DasVmConfigSpec(operation="edit", info=vim.cluster.DasVmConfigInfo(
            key=vms[VM], dasSettings=vim.cluster.DasVmSettings(restartPriority="clusterRestartPriority")))]), True))

    for name in ("DC0_C0_H0", "DC0_C0_H2"):
        wait_task(hosts[name].EnterMaintenanceMode_Task(timeout=0))
    assert refused("DC0_C0_H1") == (f"no other host of /DC0/host/DC0_C0 can take {VM} (other hosts: DC0_C0_H0: "
                                    "maintenance mode, DC0_C0_H2: maintenance mode); HA needs a second connected "
                                    "host in service")
    for name in ("DC0_C0_H0", "DC0_C0_H2"):
        wait_task(hosts[name].ExitMaintenanceMode_Task(timeout=0))

    wait_task(vms[OTHER].RelocateVM_Task(vim.vm.RelocateSpec(host=hosts["DC0_C0_H1"])))
    assert refused("DC0_C0_H1") == (f"host DC0_C0_H1 also runs 1 VM(s) of no okdbench cluster ({OTHER}), which the "
                                    "host failure would kill too; move them away (vMotion), or name a host with "
                                    "nothing else on it")
    # Named as one of the cluster's VMs (resilience.vms), it goes down with the host knowingly: accepted.
    ours = _spec(ha_sim, **_ha(), vms={"other-node": OTHER})
    with ha.session(ours) as s:
        assert ha.preconditions(s, ours, VM, "DC0_C0_H1")[2].name == "DC0_C0_H1"


# ------------------------------------------------------------------ the host failure, measured


class PlayHA(threading.Thread):
    """vSphere HA's part, which the simulator lacks, through the real API on the test's own session."""

    def __init__(self, sim, vm: str, failed: str, to: str):
        super().__init__(name="play-ha", daemon=True)
        self.si, self.vm, self.failed, self.to = sim.connect(), vm, failed, to
        self.stop, self.error, self.saw_down = threading.Event(), None, None

    def run(self) -> None:
        try:
            hosts, vms = _objects(self.si, vim.HostSystem), _objects(self.si, vim.VirtualMachine)
            while hosts[self.failed].runtime.connectionState == "connected":
                if self.stop.wait(0.02):
                    return
            self.saw_down = time.monotonic()
            time.sleep(HA_DELAY_S)  # HA's failure detection, scaled down
            vm = vms[self.vm]
            wait_task(vm.PowerOffVM_Task())
            wait_task(vm.RelocateVM_Task(vim.vm.RelocateSpec(host=hosts[self.to])))
            wait_task(vm.PowerOnVM_Task())
        except Exception as exc:  # reported by the test
            self.error = exc


@pytest.mark.needs_vcsim
def test_host_failure_measures_the_restart_where_ha_ran_the_vm(ha_sim):
    spec = _spec(ha_sim, **_ha("DC0_C0_H1", "shutdown"))
    wait_task(_objects(ha_sim.connect(), vim.VirtualMachine)[OTHER].PowerOffVM_Task())  # H0 is not ours to fail
    player = PlayHA(ha_sim, VM, "DC0_C0_H1", "DC0_C0_H2")
    player.start()
    try:
        failed = ha.ha_restart(spec, VM, "DC0_C0_H1", "shutdown", stall_s=STALL_S)
    finally:
        player.stop.set()
        player.join()
    assert player.error is None, player.error
    assert failed.vm == VM and failed.host == "DC0_C0_H1" and failed.how == "shutdown"
    assert failed.new_host == "DC0_C0_H2"
    assert failed.restart_s >= HA_DELAY_S and failed.host_down_s is not None and failed.host_down_s < failed.restart_s
    assert failed.vm_down_s is not None and failed.host_down_s <= failed.vm_down_s <= failed.restart_s
    si = ha_sim.connect()
    assert _host_states(si)["DC0_C0_H1"] == "notResponding"
    vm = _objects(si, vim.VirtualMachine)[VM]
    assert vm.runtime.host.name == "DC0_C0_H2" and vm.runtime.powerState == "poweredOn"

    assert base.ha_restore(spec, VM, "DC0_C0_H1") == "nothing (running on DC0_C0_H2)"
    with pytest.raises(PowerError) as err:
        base.ha_host_back(spec, VM, "DC0_C0_H1", "shutdown")
    assert str(err.value) == ("vsphere ha-restart host return: host DC0_C0_H1 was shut down and could not be restored by "
                              "okdbench (vCenter cannot power on a host it shut down); power it on by hand (its BMC) "
                              "and check it reconnects")


@pytest.mark.needs_vcsim
def test_no_restart_ends_after_no_change_and_restore_never_powers_on_the_dead_host(ha_sim):
    spec = _spec(ha_sim, **_ha("DC0_C0_H1", "shutdown"))
    with pytest.raises(PowerError) as err:
        ha.ha_restart(spec, VM, "DC0_C0_H1", "shutdown", stall_s=1.0)
    msg = str(err.value)
    assert not isinstance(err.value, ha.Refused)  # the host was failed: the suite must try to bring it back
    assert msg.startswith(f"vsphere ha-restart of {VM}: no change for 1 s, ") and "after the shutdown of host DC0_C0_H1 " \
        "(host notResponding, VM poweredOn): HA did not restart it; check the cluster's HA events in vCenter" in msg
    si = ha_sim.connect()
    vm = _objects(si, vim.VirtualMachine)[VM]
    wait_task(vm.PowerOffVM_Task())  # as vCenter may show it once the host is gone
    with pytest.raises(PowerError) as err:
        base.ha_restore(spec, VM, "DC0_C0_H1")
    assert str(err.value) == (f"vsphere ha-restart restore of {VM}: its host DC0_C0_H1 is notResponding and HA did "
                              "not restart it; once the host is back, power the VM on (or register it on another host)")
    assert vm.runtime.powerState == "poweredOff"


@pytest.mark.needs_vcsim
def test_rebooted_host_comes_back_and_the_vm_moves_back_to_it(vcsim_binary, vcsim_pki, tmp_path, monkeypatch):
    from tests.support.vcsim import start_vcsim

    sim = start_vcsim(vcsim_binary, vcsim_pki, tmp_path / "vcsim", extra_env={"VCSIM_HA": "1", "VCSIM_HOST_REBOOT_MS": "300"})
    try:
        monkeypatch.setenv("VSPHERE_USERNAME", sim.username)
        monkeypatch.setenv("VSPHERE_PASSWORD", sim.password)
        spec = _spec(sim, **_ha("DC0_C0_H1", "reboot"))
        si = sim.connect()
        hosts, vms = _objects(si, vim.HostSystem), _objects(si, vim.VirtualMachine)
        # Without HA's restart the VM, still on the host, comes back with it: not HA's doing, and said so.
        with pytest.raises(PowerError, match="the VM came back on DC0_C0_H1 itself after the host's reboot: HA did not"):
            ha.ha_restart(spec, VM, "DC0_C0_H1", "reboot", stall_s=STALL_S)
        # As if HA had restarted it on H2 while H1 rebooted: the host's return moves it back.
        wait_task(vms[VM].RelocateVM_Task(vim.vm.RelocateSpec(host=hosts["DC0_C0_H2"])))
        wait_task(hosts["DC0_C0_H1"].RebootHost_Task(force=True))
        did = base.ha_host_back(spec, VM, "DC0_C0_H1", "reboot")
        assert did.startswith("host DC0_C0_H1 back after ") and did.endswith(f"{VM} moved back from DC0_C0_H2 (vMotion, "
                                                                             f"{did.rsplit(', ', 1)[1]}")
        assert vms[VM].runtime.host.name == "DC0_C0_H1" and hosts["DC0_C0_H1"].runtime.connectionState == "connected"
        # A reboot vCenter is asked for without force, on a host running VMs outside maintenance mode: refused.
        with pytest.raises(vim.fault.InvalidState):
            wait_task(hosts["DC0_C0_H1"].RebootHost_Task(force=False))
    finally:
        sim.stop()


# ------------------------------------------------------------------ the suite, end to end


@pytest.mark.slow
@pytest.mark.needs_vcsim
def test_resilience_suite_runs_ha_restart_and_records_it(fake_cluster, ha_sim, tmp_path):
    """suites/test_resilience.py unchanged, in a subprocess: the scripted cluster's worker follows the
    simulated VM (silent once its host is down, back once HA's stand-in powered it on elsewhere)."""
    import yaml

    from tests.fakekube import scenarios
    from tests.test_resilience_suite import Kubelet

    fc = fake_cluster
    worker = scenarios.node_names(fc, "worker")[0]
    kubelet = Kubelet(fc, worker)
    wait_task(_objects(ha_sim.connect(), vim.VirtualMachine)[OTHER].PowerOffVM_Task())

    class FollowedHA(PlayHA):
        def run(self) -> None:
            hosts = _objects(self.si, vim.HostSystem)
            while hosts[self.failed].runtime.connectionState == "connected":
                if self.stop.wait(0.02):
                    return
            kubelet.down()
            super().run()
            if self.error is None:
                kubelet.up()

    data = vsphere_spec_data(ha_sim, name="ha16")
    data["resilience"] = {**_ha("DC0_C0_H1", "shutdown"), "probe_interval_s": 0.05, "settle_s": 1.0,
                          "vms": {worker: VM}}
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    player = FollowedHA(ha_sim, VM, "DC0_C0_H1", "DC0_C0_H2")
    player.start()
    try:
        from tests.support.fakekube import run_suites

        run = run_suites(fc, tmp_path / "results", "suites/test_resilience.py", "--spec", str(spec_file),
                         "--platform=vsphere")
    finally:
        player.stop.set()
        player.join()
    assert player.error is None, player.error
    assert run.status("resilience") == ["passed"], run.output[-3000:]
    assert f"HA restarted {VM} on DC0_C0_H2 " in run.detail("resilience")
    restart = run.samples("resilience.ha-restart.restart_s")
    assert len(restart) == 1 and restart["value"].iloc[0] >= HA_DELAY_S
    assert restart["labels"].iloc[0]["node"] == worker and restart["labels"].iloc[0]["disruption"] == "ha-restart"
    assert len(run.samples("resilience.ha-restart.recover_s")) == 1
    warnings = run.runs.runs[0].warnings
    assert any("host DC0_C0_H1 was shut down and could not be restored by okdbench" in w for w in warnings), warnings
