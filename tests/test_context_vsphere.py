"""vSphere conditions through pyvmomi's PerformanceManager against govmomi's simulator.

What vcsim serves (checked against Debian's golang-github-vmware-govmomi-dev, simulator/
performance_manager.go + vpx/performance_manager_data.go): every counter is listed, but samples
exist only for counters in its recorded data set; cpu.ready.summation (VM) and cpu.usage.average
(host) have them, mem.swapped / mem.swapinRate / mem.swapoutRate / mem.vmmemctl /
disk.maxTotalLatency return no samples for VMs. Those conversions are tested on given series
(test_vm_readings_convert_every_counter) instead. vcsim also needs QuerySpec.maxSample set (it
returns zero samples when it is 0), which okdbench sets from the window length.
"""

from __future__ import annotations

import math

import pytest

from provision.spec import parse_spec
from provision.vsphere import stats
from tests.support.vcsim import start_vcsim, vsphere_spec_data, wait_task

pytestmark = pytest.mark.needs_vcsim


def test_vm_readings_convert_every_counter():
    series = {"cpu.ready.summation": [800.0, 1200.0], "cpu.costop.summation": [400.0, 400.0],
              "mem.swapped.average": [2048.0], "mem.swapinRate.average": [10.0, 0.0], "mem.swapoutRate.average": [2.0, 0.0],
              "mem.vmmemctl.average": [1048576.0], "disk.maxTotalLatency.latest": [3.0, 5.0]}
    got = {r.metric: r.value for r in stats.vm_readings("worker-0", series, vcpus=2, memory_mib=8192)}
    assert got["context.hv.cpu.wait"] == pytest.approx(1000 / 40000)  # 1000 ms ready per 20 s sample, 2 vCPUs: 2.5 %
    assert got["context.hv.cpu.costop"] == pytest.approx(400 / 40000)
    assert got["context.hv.memory.swapped"] == 2.0  # MiB
    assert got["context.hv.memory.swap"] == pytest.approx(6.0)  # KiB/s, mean of (in + out)
    assert got["context.hv.memory.ballooned"] == pytest.approx(1 / 8)
    assert got["context.hv.disk.latency"] == 4.0


@pytest.fixture(scope="module")
def sim(vcsim_binary, vcsim_pki, tmp_path_factory):
    """A simulator of our own: two of its VMs are renamed to the spec's node VM names."""
    s = start_vcsim(vcsim_binary, vcsim_pki, tmp_path_factory.mktemp("vcsim-conditions15"))
    yield s
    s.stop()


def test_window_reads_cpu_ready_and_host_load_from_the_simulator(sim, monkeypatch):
    from pyVmomi import vim

    data = vsphere_spec_data(sim, name="conditions15")
    data["nodes"] = [{"role": "master", "count": 1, "vcpu": 1, "memory": "4GiB", "disk": "20GiB"},
                     {"role": "worker", "count": 1, "vcpu": 1, "memory": "4GiB", "disk": "20GiB"}]
    spec = parse_spec(data)
    si = sim.connect()
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
    vms = {v.name: v for v in view.view}
    wait_task(vms["DC0_H0_VM0"].Rename_Task("conditions15-master-0"))
    wait_task(vms["DC0_H0_VM1"].Rename_Task("conditions15-worker-0"))
    host = vms["DC0_H0_VM0"].runtime.host
    for k, v in sim.env().items():
        monkeypatch.setenv(k, v)  # the credentials, as the spec's default environment variables name them

    source = stats.open_stats(spec)
    source.begin()
    source.sample()
    readings = source.end()
    source.close()
    by = {(r.metric, r.node): r.value for r in readings}
    for node in ("master-0", "worker-0"):
        wait = by[("context.hv.cpu.wait", node)]
        assert math.isfinite(wait) and 0 <= wait < 1  # vcsim's recorded ready samples: a few % of 20 s
    # counters vcsim has no samples for give no reading rather than a made-up zero
    assert not any(m == "context.hv.memory.swapped" for m, _ in by)
    on = [v for v in host.vm if v.runtime.powerState == "poweredOn"]
    hnode = f"host:{host.name}"
    assert by[("context.host.vcpu_ratio", hnode)] == sum(v.config.hardware.numCPU for v in on) / host.summary.hardware.numCpuThreads
    assert by[("context.host.other_vms", hnode)] == len(on) - 2
    assert 0 <= by[("context.host.cpu.busy", hnode)] <= 1


def test_missing_vms_and_wrong_credentials_are_one_line_failures(sim, monkeypatch):
    from suites.context.capture import Capture

    spec = parse_spec(vsphere_spec_data(sim, name="conditions15-absent"))
    for k, v in sim.env().items():
        monkeypatch.setenv(k, v)
    notes: list[str] = []
    cap = Capture(lambda *a: None, notes.append, interval_s=0.1)
    cap.add(stats.open_stats(spec))
    with cap.window("w"):
        pass
    assert len(notes) == 1 and notes[0].startswith("conditions: vsphere not captured: reading failed (none of the node VMs")
    monkeypatch.setenv("VSPHERE_PASSWORD", "wrong")
    notes.clear()
    cap.add(stats.open_stats(spec))
    with cap.window("w"):
        pass
    assert len(notes) == 1 and "rejected the login" in notes[0] and "\n" not in notes[0]
