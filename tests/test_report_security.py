"""The report's Security posture table: run.json `security` as the security-audit criterion writes it,
read back through the results store, analysed (pure) and rendered by `okdbench report`."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from okdbench.cli import main
from provision.audit.report import security_posture as posture_record
from provision.audit.rules import Finding
from reports.security import security_posture
from reports.synthetic import MetricTruth, PlatformTruth, write_platform
from results.schema import RunInfo
from results.store import load_runs

EVIL = "<script>alert('sec')</script>"
KVM_VMS = ["okd-master-0", "okd-master-1", "okd-worker-0"]
VS_VMS = ["okd-vs-master-0", "okd-vs-master-1", "okd-vs-worker-0"]


def kvm_record(svirt_on: list[str]) -> dict:
    findings = [Finding("kvm.svirt", vm, "host security driver 'none'") for vm in svirt_on]
    findings.append(Finding("kvm.libvirt-tcp", "okd-worker-0", "listen_tcp = 1"))
    return posture_record(findings, KVM_VMS, "kvm")


def vsphere_record() -> dict:
    findings = [Finding("vsphere.ignition-guestinfo", "okd-vs-worker-0", "holds 812 bytes"),
                Finding("vsphere.insecure-session", "vcenter vc.example.test:443", "TLS certificate not verified")]
    return posture_record(findings, VS_VMS, "vsphere")


def _run(run_id: str, platform: str, started: str, security) -> RunInfo:
    return RunInfo(run_id=run_id, platform=platform, cluster="okd", started=started, extra={"security": security})


def test_newest_run_per_platform_counts_compliant_vms():
    runs = [_run("a", "kvm", "2024-03-01T01:00:00Z", kvm_record(KVM_VMS)),
            _run("b", "kvm", "2024-03-02T01:00:00Z", kvm_record(["okd-master-0"])),
            _run("c", "vsphere", "2024-03-01T01:00:00Z", vsphere_record())]
    p = security_posture(runs, ["vsphere", "kvm"])
    assert p is not None and p.runs == {"kvm": "b", "vsphere": "c"}
    rows = {r.rule: r for r in p.rows}
    svirt = rows["kvm.svirt"]
    assert svirt.cells[0] is None and (svirt.cells[1].compliant, svirt.cells[1].total) == (2, 3)
    # a finding on the vCenter session concerns every VM audited through it
    assert (rows["vsphere.insecure-session"].cells[0].compliant, rows["vsphere.ignition-guestinfo"].cells[0].compliant) == (0, 2)
    assert rows["vsphere.copy-paste"].cells[0].ok and rows["kvm.vtpm"].cells[1].ok
    assert [r.severity for r in p.rows] == sorted((r.severity for r in p.rows), key=("critical", "high", "medium", "low").index)
    assert p.fully_met("kvm") == (7, 9)


def test_missing_and_malformed_security_records():
    assert security_posture([RunInfo(run_id="x", platform="kvm", cluster="c", started="s")], ["kvm", "vsphere"]) is None
    bad = {"rules": [{"id": "kvm.svirt", "vms": 2, "failing": 5}]}
    p = security_posture([_run("r1", "kvm", "1", kvm_record([])), _run("r2", "kvm", "2", bad),
                          _run("r3", "vsphere", "1", "not a dict")], ["kvm", "vsphere"])
    assert p.runs == {"kvm": "r1"} and sorted(p.unreadable) == ["r2", "r3"] and p.missing == ["vsphere"]


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> str:
    results = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(7)
    metrics = [MetricTruth("build.duration", 100.0, samples=4)]
    dirs = write_platform(results, PlatformTruth("vsphere", metrics, runs=3, criteria={"security-audit": "failed"}), rng)
    dirs += write_platform(results, PlatformTruth("kvm", metrics, runs=3, criteria={"security-audit": "failed"}), rng,
                           first_night=datetime(2024, 3, 1, 2, 0, tzinfo=timezone.utc))
    for d in dirs:  # what the criterion adds to run.json
        info = json.loads((d / "run.json").read_text())
        record = kvm_record(["okd-master-0"]) if info["platform"] == "kvm" else vsphere_record()
        record["rules"][0]["title"] = f"title {EVIL}"
        info["security"] = record
        (d / "run.json").write_text(json.dumps(info))
    out = tmp_path_factory.mktemp("out") / "report.html"
    assert main(["report", str(results), "--baseline", "vsphere", "--candidate", "kvm", "--out", str(out)]) == 0
    assert load_runs([results]).runs[0].extra["security"]["rules"]
    return out.read_text()


def test_report_shows_the_security_posture_table(html):
    section = html[html.index('id="security"'):]
    section = section[:section.index("</table>")]
    assert "Security posture" in section and "<code>kvm.svirt</code>" in section and "<code>vsphere.vtpm</code>" in section
    assert "2 of 3 VMs" in section and "0 of 3 VMs" in section and "not applicable" in section
    assert "kvm: 7 of 9 rules met by every VM" in section and "vsphere: 9 of 11 rules met by every VM" in section
    assert EVIL not in html and "&lt;script&gt;" in section  # titles come from run folders: escaped
