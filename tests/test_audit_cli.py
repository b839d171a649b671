"""`okdbench audit`: one spec audits its VMs; two specs check the clusters are sized alike."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from okdbench.cli import main
from provision.audit import compare
from tests.audit_helpers import kvm_security_spec, kvm_spec, kvm_spec_data, label_nodes_by_ip, write_spec
from tests.support._bounded_run import run_bounded

ROOT = Path(__file__).resolve().parents[1]


def vsphere_data(name: str = "okd-vs", **node_overrides) -> dict:
    nodes = [{"role": "master", "count": 3, "vcpu": 4, "memory": "16GiB", "disk": "120GiB"},
             {"role": "worker", "count": 2, "vcpu": 8, "memory": "32GiB", "disk": "120GiB"}]
    for n in nodes:
        n.update(node_overrides.get(n["role"], {}))
    return {"name": name, "base_domain": "example.test", "platform": "vsphere",
            "network": {"machine_cidr": "198.18.60.0/24"}, "nodes": nodes,
            "vsphere": {"host": "127.0.0.1", "port": 9, "datacenter": "DC0", "cluster": "C0", "datastore": "DS0",
                        "network": "VM Network", "template": "fcos"}}


def kvm_data(name: str = "okd-kvm") -> dict:
    data = vsphere_data(name)
    data.pop("vsphere")
    return {**data, "platform": "kvm", "kvm": {"tuning": {"cpu_mode": "host-passthrough"}}}


def test_same_sizes_are_comparable(tmp_path, capsys):
    a, b = write_spec(tmp_path, kvm_data()), write_spec(tmp_path, vsphere_data())
    assert main(["audit", "--spec", str(a), "--spec", str(b)]) == 0
    out = capsys.readouterr().out
    assert "master vCPU" in out and "comparable: yes" in out
    # the vSphere side's disk type lives in the template: said, not guessed
    assert "disk provisioning not verified" in out


def test_different_sizes_are_not_comparable(tmp_path, capsys):
    a = write_spec(tmp_path, kvm_data())
    b = write_spec(tmp_path, vsphere_data(worker={"vcpu": 4, "count": 3}))
    assert main(["audit", "--spec", str(a), "--spec", str(b)]) == 1
    out = capsys.readouterr().out
    assert "NOT COMPARABLE (nodes.size-mismatch) worker: vCPU: okd-kvm (kvm) 8 vs okd-vs (vsphere) 4" in out
    assert "worker: count" in out and "comparable: no (2 difference(s))" in out


def test_compare_flags_thin_against_thick():
    infos = lambda prov: [compare.VmInfo(name=f"m{i}", machine=f"master-{i}", role="master", vcpu=4, memory_mib=16384,  # noqa: E731
                                         disk_gib=120, disk="x", provisioning=prov) for i in range(3)]
    cmp = compare.compare(compare.side_from_vms("kvm", "kvm", infos("thin")),
                          compare.side_from_vms("vs", "vsphere", infos("thick")))
    assert [f.observed for f in cmp.findings] == ["disk provisioning: kvm thin vs vs thick"]
    same = compare.compare(compare.side_from_vms("kvm", "kvm", infos("thick")),
                           compare.side_from_vms("vs", "vsphere", infos("thick")))
    assert same.comparable and not same.warnings


def test_uneven_role_is_not_comparable():
    vms = [compare.VmInfo(name=f"w{i}", machine="", role="worker", vcpu=v, memory_mib=8192, disk_gib=100, disk="x",
                          provisioning="thin") for i, v in enumerate((4, 8))]
    even = [compare.VmInfo(**{**vms[0].__dict__, "name": f"e{i}"}) for i in range(2)]
    cmp = compare.compare(compare.side_from_vms("a", "kvm", vms), compare.side_from_vms("b", "kvm", even))
    assert any("uneven within a" in f.observed for f in cmp.findings)


def test_single_spec_audits_the_vms(tmp_path, capsys):
    spec_path, _ = kvm_spec(tmp_path, "bad")
    assert main(["audit", "--spec", str(spec_path)]) == 1
    out = capsys.readouterr().out
    assert "critical  kvm.cpu-model" in out and "fixes:" in out and "kvm.tuning.cpu_mode: host-passthrough" in out
    assert main(["audit", "--spec", str(spec_path), "--fail-on", "never", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {f["rule"] for f in data["findings"]} >= {"kvm.cpu-model", "kvm.disk-bus", "kvm.memballoon"}
    assert [v["machine"] for v in data["vms"]] == ["master-0", "worker-0"]


def test_single_spec_clean(tmp_path, capsys):
    spec_path, _ = kvm_spec(tmp_path, "good")
    assert main(["audit", "--spec", str(spec_path), "--only", "performance"]) == 0
    assert "no findings" in capsys.readouterr().out


def test_live_comparison_reads_the_hypervisor(tmp_path, capsys):
    spec_path, data = kvm_spec(tmp_path, "good")
    other = tmp_path / "other"
    other.mkdir()
    spec_b, _ = kvm_spec(other, "good")
    assert main(["audit", "--spec", str(spec_path), "--spec", str(spec_b), "--live"]) == 0
    out = capsys.readouterr().out
    assert "virtio qcow2 cache=none io=native (thin)" in out and "comparable: yes" in out


@pytest.mark.parametrize("args,message", [
    (["--spec", "/nonexistent.yaml"], "--spec: /nonexistent.yaml does not exist"),
    (["--spec", "{a}", "--spec", "{a}", "--spec", "{a}"], "--spec: given 3 times"),
    (["--spec", "{unreachable}"], "kvm.uri: cannot connect to libvirt at qemu+tcp://127.0.0.1:9/system"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    a = write_spec(tmp_path, kvm_data())
    unreachable = write_spec(tmp_path, kvm_spec_data("aud", "qemu+tcp://127.0.0.1:9/system"))
    argv = [x.format(a=a, unreachable=unreachable) for x in args]
    proc = run_bounded([sys.executable, "-m", "okdbench", "audit", *argv], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("INFO ")]  # progress is fine
    assert len(lines) == 1 and lines[0].startswith("okdbench audit: error: ") and message in lines[0], proc.stderr


def test_rule_table_doc_is_generated_from_the_rules():
    from provision.audit.doc import render_markdown

    doc = (ROOT / "README.md").read_text()
    assert render_markdown() in doc, "README's audit rule table is stale: paste `python -m provision.audit.doc` into it"


def test_live_kvm_against_vsphere(tmp_path, capsys, monkeypatch, vcsim_fresh):
    """The headline check on real components: libvirt (test driver) against vCenter (simulator)."""
    from provision.audit import collect_vsphere
    from tests.support.vcsim import wait_task

    si = vcsim_fresh.connect()
    vms = {props["name"]: vm for vm, props in collect_vsphere.retrieve(si)}
    wait_task(vms["DC0_H0_VM0"].Rename_Task("okdvs-master-0"))
    wait_task(vms["DC0_H0_VM1"].Rename_Task("okdvs-worker-0"))
    kvm_path, kvm = kvm_spec(tmp_path, "good")
    vs = {**vsphere_data("okdvs"), "nodes": kvm["nodes"]}
    vs["vsphere"] = {**vs["vsphere"], "host": vcsim_fresh.host, "port": vcsim_fresh.port, "datacenter": "DC0",
                     "cluster": "DC0_C0", "datastore": "LocalDS_0", "ca_bundle": str(vcsim_fresh.ca_bundle)}
    for k, v in vcsim_fresh.env().items():
        monkeypatch.setenv(k, v)
    vs_path = write_spec(tmp_path, vs)
    # Same specs, so the spec-only check passes ...
    assert main(["audit", "--spec", str(kvm_path), "--spec", str(vs_path)]) == 0
    capsys.readouterr()
    # ... but the simulator's VMs are not what the spec says: 32 MiB, 1 vCPU.
    assert main(["audit", "--spec", str(kvm_path), "--spec", str(vs_path), "--live"]) == 1
    out = capsys.readouterr().out
    assert "NOT COMPARABLE (nodes.size-mismatch) master: vCPU: aud (kvm) 2 vs okdvs (vsphere) 1" in out
    assert "master: memory: aud (kvm) 256 MiB vs okdvs (vsphere) 32 MiB" in out
    assert "pvscsi thin (thin)" in out


def test_only_selects_a_rule_set_and_both_print_by_default(tmp_path, capsys):
    spec_path, data = kvm_spec(tmp_path, "good")
    (tmp_path / "qemu.conf").write_text('user = "root"\n')
    data["kvm"]["host_config"] = {"qemu_conf": str(tmp_path / "qemu.conf"), "libvirtd_conf": str(tmp_path / "none.conf"),
                                  "virtproxyd_conf": str(tmp_path / "none.conf"), "systemd_dir": str(tmp_path)}
    spec_path = write_spec(tmp_path, data)
    assert main(["audit", "--spec", str(spec_path)]) == 1
    out = capsys.readouterr().out
    assert out.index("== performance ==") < out.index("== security ==")
    assert "high      kvm.qemu-root" in out and 'qemu.conf user = "root"' in out
    assert main(["audit", "--spec", str(spec_path), "--only", "performance"]) == 0
    assert "== security ==" not in capsys.readouterr().out
    assert main(["audit", "--spec", str(spec_path), "--only", "security", "--json", "--fail-on", "never"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rule_sets"] == ["security"] and {f["kind"] for f in data["findings"]} == {"security"}
    assert {"kvm.qemu-root", "kvm.svirt", "kvm.vtpm"} <= {f["rule"] for f in data["findings"]}


def test_unreadable_host_config_is_said_once_and_the_audit_goes_on(tmp_path, capsys, caplog):
    _, data = kvm_spec(tmp_path, "good")
    data["kvm"]["host_config"] = {"qemu_conf": str(tmp_path)}  # a directory: unreadable like a 0600 file for non-root
    assert main(["audit", "--spec", str(write_spec(tmp_path, data)), "--only", "performance"]) == 0
    assert "no findings" in capsys.readouterr().out
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"audit: kvm.host_config: {tmp_path}: cannot read (Is a directory); run the audit as a user "
                        "who can, or point kvm.host_config at a copy; the security rules judge this host without it"]


def test_kubeconfig_lets_the_cli_judge_what_must_be_gone_after_install(tmp_path, capsys, fake_cluster):
    spec_path, data = kvm_security_spec(tmp_path, "")
    assert main(["audit", "--spec", str(spec_path), "--only", "security", "--json", "--fail-on", "never"]) == 0
    assert "kvm.ignition-left" not in {f["rule"] for f in json.loads(capsys.readouterr().out)["findings"]}
    nodes = label_nodes_by_ip(fake_cluster, data)
    assert main(["audit", "--spec", str(spec_path), "--only", "security", "--json", "--fail-on", "never",
                 "--kubeconfig", str(fake_cluster.kubeconfig)]) == 0
    left = [f for f in json.loads(capsys.readouterr().out)["findings"] if f["rule"] == "kvm.ignition-left"]
    assert [(f["vm"], f["node"]) for f in left] == [("aud-master-0", nodes["master-0"])]
    assert main(["audit", "--spec", str(spec_path), "--kubeconfig", str(tmp_path / "nope")]) == 2
    assert "--kubeconfig: " in capsys.readouterr().err
