"""suites/test_platform_audit.py run as a user runs it (pytest in a subprocess), against real components:
libvirt's test driver loaded with the spec's domains, govmomi's simulator, and the fake Kubernetes API
for the node names. Checks what lands in the run folder: criterion, samples, run.json nodes, audit.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from results.store import load_runs
from tests.audit_helpers import kvm_security_spec, kvm_spec, kvm_spec_data, label_nodes_by_ip, write_spec
from tests.support.vcsim import wait_task
from tests.support._bounded_run import run_bounded

ROOT = Path(__file__).resolve().parents[1]


def run_suite(tmp_path: Path, *args: str, env: dict | None = None):
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "pytest", "suites/test_platform_audit.py", "--results-dir", str(results),
           "-p", "no:cacheprovider", "-q", *args]
    proc = run_bounded(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    runs = load_runs([results])
    assert runs.runs, proc.stdout + proc.stderr
    return proc, runs, results / runs.runs[0].run_id


def criterion(runs) -> tuple[str, str]:
    c = runs.criteria[runs.criteria["criterion"] == "platform-audit"]
    assert len(c) == 1, runs.criteria
    return c["status"].iloc[0], c["detail"].iloc[0]


def samples(runs, metric: str) -> list[tuple[float, dict]]:
    s = runs.samples[runs.samples["metric"] == metric]
    return [(v, json.loads(lab)) for v, lab in zip(s["value"], s["labels"])]


# ---------------------------------------------------------------------------- KVM via libvirt's test driver

def test_kvm_findings_fail_the_criterion_and_are_recorded(tmp_path, fake_cluster):
    spec_path, data = kvm_spec(tmp_path, "bad")
    nodes = label_nodes_by_ip(fake_cluster, data)
    proc, runs, run_dir = run_suite(tmp_path, "--platform=kvm", "--label=kvm-default", "--spec", str(spec_path),
                                    "--kubeconfig", str(fake_cluster.kubeconfig))
    status, detail = criterion(runs)
    assert status == "failed", proc.stdout
    assert detail.startswith("critical") is False and "critical kvm.cpu-model" in detail and "kvm.disk-cache" in detail
    counts = samples(runs, "audit.findings.count")
    cpu = [lab for _, lab in counts if lab["rule"] == "kvm.cpu-model"]
    assert cpu == [{"severity": "critical", "node": nodes["master-0"], "rule": "kvm.cpu-model"}]
    totals = {lab["severity"]: v for v, lab in samples(runs, "audit.findings.total")}
    assert set(totals) == {"critical", "high", "medium", "low"} and totals["critical"] == 1
    assert sum(v for v, _ in counts) == sum(totals.values())
    info = json.loads((run_dir / "run.json").read_text())
    assert [(n["role"], n["count"], n["vcpu"], n["memory_mib"]) for n in info["nodes"]] == [("master", 1, 2, 256), ("worker", 1, 1, 256)]
    full = json.loads((run_dir / "audit.json").read_text())
    assert {f["vm"] for f in full["findings"]} == {"aud-master-0"}
    assert all(f["fix"] for f in full["findings"])


def test_kvm_tuned_vms_pass_with_no_findings(tmp_path, fake_cluster):
    spec_path, _ = kvm_spec(tmp_path, "good")
    proc, runs, _ = run_suite(tmp_path, "--platform=kvm", "--label=kvm-tuned", "--spec", str(spec_path),
                              "--kubeconfig", str(fake_cluster.kubeconfig))
    assert criterion(runs) == ("passed", "no findings on 2 VM(s)"), proc.stdout
    assert samples(runs, "audit.findings.count") == []
    assert sorted(v for v, _ in samples(runs, "audit.findings.total")) == [0, 0, 0, 0]


def test_fail_threshold_never_records_without_failing(tmp_path, fake_cluster):
    spec_path, _ = kvm_spec(tmp_path, "bad")
    proc, runs, _ = run_suite(tmp_path, "--platform=kvm", "--spec", str(spec_path), "--kubeconfig",
                              str(fake_cluster.kubeconfig), env={"OKDBENCH_AUDIT_FAIL_ON": "never"})
    status, detail = criterion(runs)
    assert status == "passed" and "kvm.cpu-model" in detail, proc.stdout


def test_bad_fail_threshold_is_one_line(tmp_path, fake_cluster):
    spec_path, _ = kvm_spec(tmp_path, "good")
    _, runs, _ = run_suite(tmp_path, "--platform=kvm", "--spec", str(spec_path), "--kubeconfig",
                           str(fake_cluster.kubeconfig), env={"OKDBENCH_AUDIT_FAIL_ON": "severe"})
    assert criterion(runs) == ("failed", "OKDBENCH_AUDIT_FAIL_ON: 'severe' is not allowed; use one of critical, high, "
                                         "medium, low or never")


def test_skips_in_one_line_without_spec(tmp_path):
    proc, runs, _ = run_suite(tmp_path, "--platform=kvm")
    assert criterion(runs) == ("skipped", "platform audit needs --spec to find the node VMs on the hypervisor (none given)")


def test_skips_in_one_line_when_hypervisor_unreachable(tmp_path, fake_cluster):
    # Port 9 on loopback: nothing listens; the connection is refused at once.
    spec_path = write_spec(tmp_path, kvm_spec_data("aud", "qemu+tcp://127.0.0.1:9/system"))
    proc, runs, _ = run_suite(tmp_path, "--platform=kvm", "--spec", str(spec_path), "--kubeconfig", str(fake_cluster.kubeconfig))
    status, detail = criterion(runs)
    assert status == "skipped" and detail.startswith("platform audit: no hypervisor access: kvm.uri: cannot connect to libvirt")
    assert "\n" not in detail and "Traceback" not in proc.stdout


# ---------------------------------------------------------------------------- vSphere via the simulator

def test_vsphere_findings_labelled_by_provider_id(tmp_path, vcsim_fresh, fake_cluster):
    from pyVmomi import vim

    from provision.audit import collect_vsphere

    si = vcsim_fresh.connect()
    vms = {props["name"]: vm for vm, props in collect_vsphere.retrieve(si)}
    wait_task(vms["DC0_H0_VM0"].Rename_Task("okdvs-master-0"))
    wait_task(vms["DC0_H0_VM1"].Rename_Task("okdvs-worker-0"))
    wait_task(vms["DC0_H0_VM1"].ReconfigVM_Task(vim.vm.ConfigSpec(numCPUs=2)))  # drifted from the spec
    uuid = vms["DC0_H0_VM0"].config.uuid
    node = fake_cluster.list("nodes")[0]["metadata"]["name"]
    fake_cluster.patch("nodes", node, lambda o: o.setdefault("spec", {}).update(providerID=f"vsphere://{uuid}"))
    spec_path = write_spec(tmp_path, {
        "name": "okdvs", "base_domain": "example.test", "platform": "vsphere",
        "network": {"machine_cidr": "198.18.50.0/24"},
        "nodes": [{"role": "master", "count": 1, "vcpu": 1, "memory": "32MiB", "disk": "1GiB"},
                  {"role": "worker", "count": 1, "vcpu": 1, "memory": "32MiB", "disk": "1GiB"}],
        "vsphere": {"host": vcsim_fresh.host, "port": vcsim_fresh.port, "datacenter": "DC0", "cluster": "DC0_C0",
                    "datastore": "LocalDS_0", "network": "VM Network", "template": "okd-template",
                    "ca_bundle": str(vcsim_fresh.ca_bundle)},
    })
    proc, runs, run_dir = run_suite(tmp_path, "--platform=vsphere", "--spec", str(spec_path), "--kubeconfig",
                                    str(fake_cluster.kubeconfig), env=vcsim_fresh.env())
    status, detail = criterion(runs)
    assert status == "failed" and "critical vsphere.hw-version" in detail, proc.stdout
    labels = [lab for _, lab in samples(runs, "audit.findings.count")]
    assert {"severity": "critical", "node": node, "rule": "vsphere.disk-uuid"} in labels
    assert {"severity": "high", "node": "okdvs-worker-0", "rule": "nodes.size-drift"} in labels
    info = json.loads((run_dir / "run.json").read_text())
    assert [(n["role"], n["vcpu"]) for n in info["nodes"]] == [("master", 1), ("worker", 2)]
    for f in run_dir.iterdir():
        assert vcsim_fresh.password not in f.read_text(errors="replace"), f"password leaked into {f.name}"


# ---------------------------------------------------------------------------- security-audit (same read, own criterion)

def security_criterion(runs) -> tuple[str, str]:
    c = runs.criteria[runs.criteria["criterion"] == "security-audit"]
    assert len(c) == 1, runs.criteria
    return c["status"].iloc[0], c["detail"].iloc[0]


def _kvm_security_spec(tmp_path: Path, fake_cluster, qemu_conf: str) -> tuple[Path, dict[str, str]]:
    spec_path, data = kvm_security_spec(tmp_path, qemu_conf)
    return spec_path, label_nodes_by_ip(fake_cluster, data)


def test_security_audit_fails_on_high_and_records_posture(tmp_path, fake_cluster):
    spec_path, nodes = _kvm_security_spec(tmp_path, fake_cluster, 'user = "root"\n')
    proc, runs, run_dir = run_suite(tmp_path, "--platform=kvm", "--label=kvm-tuned", "--spec", str(spec_path),
                                    "--kubeconfig", str(fake_cluster.kubeconfig))
    # The performance criterion is unchanged by security findings ...
    assert criterion(runs) == ("passed", "no findings on 2 VM(s)"), proc.stdout
    assert samples(runs, "audit.findings.count") == []
    # ... the security criterion fails on them.
    status, detail = security_criterion(runs)
    assert status == "failed" and "high kvm.qemu-root [all 2 VMs]" in detail and "kvm.ignition-readable" in detail
    labels = [lab for _, lab in samples(runs, "security.findings.count")]
    assert {"severity": "medium", "node": nodes["master-0"], "rule": "kvm.ignition-left"} in labels
    assert {"severity": "high", "node": nodes["worker-0"], "rule": "kvm.qemu-root"} in labels
    posture = json.loads((run_dir / "run.json").read_text())["security"]
    rules = {r["id"]: r for r in posture["rules"]}
    assert posture["platform"] == "kvm" and len(posture["vms"]) == 2
    assert (rules["kvm.qemu-root"]["failing"], rules["kvm.ignition-left"]["failing"], rules["kvm.console-exposed"]["failing"]) == (2, 1, 0)
    assert all(r["vms"] == 2 and r["title"] for r in posture["rules"])
    full = json.loads((run_dir / "audit.json").read_text())
    assert full["findings"] == [] and {f["kind"] for f in full["security"]} == {"security"}


def test_security_fail_threshold_is_its_own(tmp_path, fake_cluster):
    spec_path, _ = _kvm_security_spec(tmp_path, fake_cluster, 'user = "libvirt-qemu"\n')
    proc, runs, _ = run_suite(tmp_path, "--platform=kvm", "--spec", str(spec_path), "--kubeconfig",
                              str(fake_cluster.kubeconfig), env={"OKDBENCH_SECURITY_FAIL_ON": "never",
                                                                 "OKDBENCH_AUDIT_FAIL_ON": "low"})
    status, detail = security_criterion(runs)
    assert status == "passed" and "kvm.ignition-readable" in detail and "kvm.qemu-root" not in detail, proc.stdout
    assert criterion(runs)[0] == "passed"
