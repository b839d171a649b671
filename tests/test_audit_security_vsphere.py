"""vSphere security rules against govmomi's simulator: advanced settings, firmware and a vTPM planted
through pyvmomi on two VMs of a simulator of our own, read back by the audit's collector.

govmomi's simulator (0.24, Debian 12) does not implement VM encryption (ConfigSpec.crypto) and
hands an added VirtualTPM back as a plain VirtualDevice: the quiet sides of vsphere.encryption and
vsphere.vtpm are checked on the good VM's snapshot with encrypted/vtpm set, everything else is what
the simulator returned.
"""

from __future__ import annotations

import base64
import dataclasses

import pytest
from pyVmomi import vim

from provision.audit import collect_vsphere, vsphere_security
from provision.audit.platform import audit_spec
from provision.audit.report import security_posture
from provision.audit.rules import RULES
from provision.spec import parse_spec
from tests.support.vcsim import start_vcsim, vsphere_spec_data, wait_task

pytestmark = pytest.mark.needs_vcsim

# Spelled out, not read from the table: deleting a rule must fail a test.
VSPHERE_SECURITY_RULES = ["vsphere.ignition-guestinfo", "vsphere.copy-paste", "vsphere.device-connectable",
                          "vsphere.disk-shrink", "vsphere.setinfo-limit", "vsphere.remote-display",
                          "vsphere.log-rotation", "vsphere.secure-boot", "vsphere.vtpm", "vsphere.encryption"]
BAD, GOOD = "DC0_H0_VM0", "DC0_H0_VM1"
IGNITION = base64.b64encode(b'{"ignition":{"version":"3.2.0"},"pull-secret":"canary-Vq3"}').decode()

BAD_SETTINGS = {
    "guestinfo.ignition.config.data": IGNITION, "guestinfo.ignition.config.data.encoding": "base64",
    "isolation.tools.copy.disable": "FALSE", "isolation.tools.paste.disable": "FALSE",
    "isolation.tools.diskShrink.disable": "FALSE",
    "tools.setInfo.sizeLimit": "104857600", "RemoteDisplay.maxConnections": "8", "log.keepOld": "100",
}
GOOD_SETTINGS = {
    "isolation.device.connectable.disable": "TRUE", "isolation.tools.diskShrink.disable": "TRUE",
    "isolation.tools.diskWiper.disable": "TRUE", "tools.setInfo.sizeLimit": "1048576",
    "RemoteDisplay.maxConnections": "1", "log.rotateSize": "2048000", "log.keepOld": "10",
}


def _options(values: dict[str, str]) -> list[vim.option.OptionValue]:
    return [vim.option.OptionValue(key=k, value=v) for k, v in values.items()]


def _vm(si, name: str) -> vim.VirtualMachine:
    return next(vm for vm, props in collect_vsphere.retrieve(si) if props.get("name") == name)


@pytest.fixture(scope="module")
def sim(vcsim_binary, vcsim_pki, tmp_path_factory):
    """A simulator of our own: the tests reconfigure its VMs, which the shared `vcsim` must not see."""
    s = start_vcsim(vcsim_binary, vcsim_pki, tmp_path_factory.mktemp("vcsim-security18"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def audited(sim):
    si = sim.connect()
    wait_task(_vm(si, BAD).ReconfigVM_Task(vim.vm.ConfigSpec(extraConfig=_options(BAD_SETTINGS))))
    good = _vm(si, GOOD)
    wait_task(good.PowerOffVM_Task())
    wait_task(good.ReconfigVM_Task(vim.vm.ConfigSpec(firmware="efi", extraConfig=_options(GOOD_SETTINGS))))
    wait_task(good.ReconfigVM_Task(vim.vm.ConfigSpec(bootOptions=vim.vm.BootOptions(efiSecureBootEnabled=True))))
    inv = collect_vsphere.collect(si, "audit", [], names=[BAD, GOOD], roles={BAD: "master", GOOD: "worker"})
    snaps = {vm.name: vm for vm in inv.vms}
    # What the simulator cannot do (module docstring): an encrypted VM with a vTPM.
    snaps[GOOD] = dataclasses.replace(snaps[GOOD], encrypted=True, vtpm=True)
    findings = vsphere_security.audit_vsphere_security(list(snaps.values()))
    return snaps, {n: {f.rule for f in findings if f.vm == n} for n in (BAD, GOOD)}, findings


@pytest.mark.parametrize("rule", VSPHERE_SECURITY_RULES)
def test_rule_fires_on_bad_vm_and_not_on_good(audited, rule):
    _, fired, findings = audited
    assert rule in fired[BAD], f"{rule} did not fire on the bad VM; findings: {[f.line() for f in findings]}"
    assert rule not in fired[GOOD], f"{rule} fired on the good VM: {[f.line() for f in findings if f.vm == GOOD]}"


def test_every_vsphere_security_rule_has_a_function():
    assert set(vsphere_security.RULE_FUNCTIONS) | set(vsphere_security.SESSION_RULES) == \
        set(VSPHERE_SECURITY_RULES) | {"vsphere.insecure-session"} == \
        {r for r, rule in RULES.items() if r.startswith("vsphere.") and rule.kind == "security"}


def test_snapshot_reads_firmware_and_settings(audited):
    snaps, _, findings = audited
    assert snaps[GOOD].firmware == "efi" and snaps[GOOD].secure_boot
    assert snaps[BAD].firmware == "bios" and not snaps[BAD].vtpm and not snaps[BAD].encrypted
    ign = next(f for f in findings if f.rule == "vsphere.ignition-guestinfo")
    assert ign.observed == f"guestinfo.ignition.config.data holds {len(IGNITION)} bytes"
    assert all(IGNITION not in f.line() and "canary-Vq3" not in f.line() for f in findings)
    copy = sorted(f.subject for f in findings if f.rule == "vsphere.copy-paste")
    assert copy == ["isolation.tools.copy.disable", "isolation.tools.paste.disable"]


@pytest.mark.parametrize("settings,rule,fires", [
    ({}, "vsphere.copy-paste", False),  # vSphere disables copy/paste by default
    ({"isolation.tools.copy.disable": "TRUE"}, "vsphere.copy-paste", False),
    ({}, "vsphere.setinfo-limit", False),  # 1 MiB default
    ({"tools.setInfo.sizeLimit": "0"}, "vsphere.setinfo-limit", True),
    ({}, "vsphere.remote-display", True),
    ({"RemoteDisplay.maxConnections": "1"}, "vsphere.remote-display", False),
    ({"log.rotateSize": "0"}, "vsphere.log-rotation", True),
    ({"log.rotateSize": "1024000"}, "vsphere.log-rotation", False),
    ({"guestinfo.ignition.config.data": ""}, "vsphere.ignition-guestinfo", False),  # cleared
])
def test_defaults_and_overrides(settings, rule, fires):
    vm = collect_vsphere.vsphere.VsphereVm(name="vm", role="worker", hw_version="vmx-19", vcpu=1, memory_mib=1,
                                           power_state="poweredOn", extra_config=settings)
    assert bool(vsphere_security.RULE_FUNCTIONS[rule](vm)) is fires


def test_insecure_session_is_a_finding_of_the_run(sim, monkeypatch):
    for k, v in sim.env().items():
        monkeypatch.setenv(k, v)
    data = vsphere_spec_data(sim)
    data["nodes"] = [{"role": "master", "count": 1, "vcpu": 1, "memory": "32MiB", "disk": "1GiB"}]
    spec = parse_spec(data)
    names = [BAD, GOOD]
    secure = audit_spec(spec, names=names)
    insecure = audit_spec(spec, names=names, insecure=True)
    assert "vsphere.insecure-session" not in {f.rule for f in secure.findings}
    [f] = [f for f in insecure.findings if f.rule == "vsphere.insecure-session"]
    assert f.vm == f"vcenter {sim.host}:{sim.port}" and f.severity == "high"
    # A session finding concerns every VM audited through it.
    posture = {r["id"]: r for r in security_posture(insecure.findings, names, "vsphere")["rules"]}
    assert posture["vsphere.insecure-session"]["failing"] == 2
    assert {r for r in posture} == {r for r, rule in RULES.items() if rule.kind == "security" and r.startswith("vsphere.")}
