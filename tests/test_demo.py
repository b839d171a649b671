"""okdbench demo: the planning pieces, the example specs, and the short CI form end to end on real VMs."""

from __future__ import annotations

import ipaddress
import json
import math
from pathlib import Path

import pytest
import yaml

from okdbench import demo
from provision.spec import load_spec, parse_spec

BENCH_NET = ipaddress.ip_network("198.18.0.0/15")


def test_runs_alternate_which_platform_goes_first():
    assert demo.run_order(3) == [("kvm-default", 0), ("kvm-tuned", 0), ("kvm-tuned", 1), ("kvm-default", 1),
                                 ("kvm-default", 2), ("kvm-tuned", 2)]


def test_demo_spec_fills_the_guest_and_replaces_probe_arguments(tmp_path):
    template = yaml.safe_load((demo.EXAMPLES / "demo-kvm-tuned.yaml").read_text())
    template["kvm"]["kernel_args"] = "okdbench.repeat=9 okdbench.linger=5 okdbench.probes=cpu"
    data = demo.demo_spec(template, kernel=Path("/k/vmlinuz"), initrd=Path("/k/initrd.img"), repeat=2)
    spec = parse_spec(data)
    assert spec.kvm.kernel == "/k/vmlinuz" and spec.kvm.initrd == "/k/initrd.img"
    assert spec.kvm.kernel_args == "okdbench.linger=5 okdbench.probes=cpu,fsync,seqwrite,rtt okdbench.repeat=2 okdbench.gapwatch=600"
    assert spec.resilience.disruptions == ["freeze", "reset"] and spec.resilience.freeze_s == 5
    assert template["kvm"]["kernel_args"].startswith("okdbench.repeat=9"), "the template itself is left alone"


def test_example_specs_differ_only_in_tuning_and_stay_on_the_benchmark_network():
    specs = {label: load_spec(demo.EXAMPLES / f"demo-{label}.yaml") for label in demo.LABELS}
    default, tuned = specs["kvm-default"], specs["kvm-tuned"]
    for spec in specs.values():
        assert spec.okd.guest == "testguest" and spec.platform == "kvm"
        assert spec.network.machine_cidr.subnet_of(BENCH_NET)
        # Relative kernel paths resolve against the spec file, into the test guest cache.
        assert spec.kvm.kernel.startswith(str(demo.CACHE / "testguest"))
    assert [g.model_dump() for g in default.nodes] == [g.model_dump() for g in tuned.nodes]
    assert default.name != tuned.name and default.network.machine_cidr != tuned.network.machine_cidr
    assert default.kvm.tuning.cpu_mode == "default" and default.kvm.tuning.disk_cache == "default"
    assert tuned.kvm.tuning == type(tuned.kvm.tuning)(), "kvm-tuned is okdbench's template defaults"


def test_bad_arguments_are_one_line_errors(tmp_path):
    from plumbing.errors import UserError

    with pytest.raises(UserError, match=r"^--runs: 0 is not allowed"):
        demo.run_demo(runs=0, out=tmp_path)
    with pytest.raises(UserError, match=r"^--repeat: 0 is not allowed"):
        demo.run_demo(runs=1, repeat=0, out=tmp_path)


GUEST_CRITERIA = {"guest.boot", "guest.ignition", "guest.nic", "guest.dhcp", "guest.dns"}


@pytest.mark.slow
@pytest.mark.needs_libvirtd
def test_short_demo_end_to_end(libvirt_uri, tmp_path):
    """The CI form: 3 runs per platform, repeat 1, real libvirtd + QEMU, then the report."""
    from results.store import load_runs

    lines: list[str] = []
    result = demo.run_demo(runs=3, repeat=1, out=tmp_path / "demo", progress=demo.Progress(lines.append))

    assert [(r.label, r.index) for r in result.runs] == demo.run_order(3)
    assert all(r.status == "complete" for r in result.runs), [(r.label, r.status, str(r.log)) for r in result.runs]
    assert any("provisioning VMs" in line for line in lines) and lines[0].startswith("[00:")

    html = result.report.read_text()
    assert "kvm-default" in html and "kvm-tuned" in html

    runs = load_runs([result.results_dir])
    assert sorted(r.platform for r in runs.runs) == ["kvm-default"] * 3 + ["kvm-tuned"] * 3
    for info in runs.runs:
        facts = info.hypervisor or {}
        assert facts.get("domain_type") in ("kvm", "qemu"), (info.run_id, info.status, facts)
        assert facts.get("emulated") is (facts["domain_type"] != "kvm"), (info.run_id, facts)

    crit = runs.criteria
    ran = crit[crit["status"] != "skipped"]
    # Every criterion that applies passed, bar one: the audit flags kvm-default's libvirt defaults.
    unexpected = [f for f in result.failures if not f.expected]
    assert not unexpected, [(f.label, f.criterion, f.detail) for f in unexpected]
    assert set(ran["status"]) <= {"passed", "failed"}
    for f in result.failures:
        assert f.label == "kvm-default" and f.criterion == "platform-audit" and "kvm.cpu-model" in f.detail
    assert (crit[crit["platform"] == "kvm-tuned"]["status"] != "failed").all()
    for label in demo.LABELS:
        passed = set(crit[(crit["platform"] == label) & (crit["status"] == "passed")]["criterion"])
        assert GUEST_CRITERIA <= passed
    skipped = crit[crit["status"] == "skipped"]
    assert len(skipped) and (skipped["detail"] == "no OKD cluster (pass --kubeconfig or an OKD --spec)").all()

    s = runs.samples
    for label in demo.LABELS:
        mine = s[s["platform"] == label]
        assert (mine["metric"] == "provision.vms.duration").sum() == 3
        assert (mine["metric"] == "guest.boot.userspace").sum() == 3 * 2  # 3 runs x 2 VMs
        p50 = mine[mine["metric"] == "guest.disk.fdatasync.p50"].sort_values(["run_id", "labels"])
        p99 = mine[mine["metric"] == "guest.disk.fdatasync.p99"].sort_values(["run_id", "labels"])
        iops = mine[mine["metric"] == "guest.disk.fdatasync.iops"]
        assert len(p50) == len(p99) == len(iops) == 3 * 2
        for v in list(p50["value"]) + list(p99["value"]) + list(iops["value"]):
            assert math.isfinite(v) and v > 0
        assert (p99["value"].to_numpy() >= p50["value"].to_numpy()).all()
        for metric in ("guest.cpu.sha256", "guest.disk.seqwrite", "guest.net.rtt.avg"):
            assert (mine["metric"] == metric).sum() == 3 * 2, metric
        for kind in ("freeze", "reset"):  # the resilience step: one worker guest per run
            gaps = mine[mine["metric"] == f"resilience.{kind}.unavailable_s"]["value"]
            assert len(gaps) == 3 and (gaps > 0).all(), (kind, list(gaps))
    assert 'id="resilience"' in html and "A worker freeze cost" in html

    # Nothing of the demo is left on the hypervisor.
    import libvirt

    conn = libvirt.open(libvirt_uri)
    try:
        names = [d.name() for d in conn.listAllDomains()] + [n.name() for n in conn.listAllNetworks()]
    finally:
        conn.close()
    assert not [n for n in names if n.startswith(("demo-default", "demo-tuned", "okd-demo-"))], names
    summary = json.dumps({"runs": len(result.runs), "seconds": round(result.seconds, 1)})
    print(f"demo timing: {summary}")
