"""The README's "Platform audit rules" section from the rule table, so README and code cannot disagree.

    python -m provision.audit.doc   # prints the section body to paste into README.md
"""

from __future__ import annotations

from provision.audit.rules import RULES, severity_rank

INTRO = """\
`okdbench audit --spec S` and the `platform-audit` suite criterion read the node VMs on the
hypervisor (libvirt domain XML for KVM, pyvmomi for vSphere) and report these settings. The
criterion fails on `critical` and `high` findings (`OKDBENCH_AUDIT_FAIL_ON=critical|high|medium|low|never`
changes that); every finding is recorded as a sample `audit.findings.count` (labels severity,
node, rule), in the criterion detail, and in full in `results/<run>/audit.json`.
`okdbench audit --spec A --spec B` is the fair-comparison check (`nodes.size-mismatch`).

KVM overcommit counts the vCPUs of the host's running domains plus the audited ones (defined
but not yet started) against the host's online CPUs (libvirt `getCPUMap`); limits 1.5:1 where
masters or the bootstrap run, 4:1 otherwise. CPU models are expanded to their features by
libvirt itself (`baselineCPU` with `EXPAND_FEATURES`), so a custom model passes when it and its
`<feature>` elements provide x86-64-v2 (cx16, lahf_lm, popcnt, pni, sse4.1, sse4.2, ssse3).

"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


SECURITY_INTRO = """\
### Security rules

The same read of the hypervisor also judges how each platform isolates and protects the VMs
(`okdbench audit --spec S --only security`). The `security-audit` criterion fails on `critical`
and `high` security findings (`OKDBENCH_SECURITY_FAIL_ON` changes that, same values); findings
are recorded as `security.findings.count` samples, listed under `security` in
`results/<run>/audit.json`, and counted per rule in run.json `security`, from which the report's
*Security posture* table shows how many VMs comply on each platform. On KVM the host's daemon
settings are read from `kvm.host_config` (default `/etc/libvirt/qemu.conf`,
`/etc/libvirt/libvirtd.conf`, `/etc/libvirt/virtproxyd.conf`, `/etc/systemd/system`) when
libvirtd runs on the machine doing the audit (a file it cannot read, e.g. qemu.conf 0600 for a
non-root auditor, is named in a warning and the rules use what libvirt reports: its security
model and QEMU's DAC label); host-wide findings are reported once per VM.
`kvm.ignition-left` needs the node to have joined (the suite knows the nodes; give the CLI `--kubeconfig`).
`okdbench provision` clears the ignition from the hypervisor once the install completes.

"""


def _table(kind: str) -> str:
    rows = ["| id | platform | severity | bad | good | why | fix |", "|---|---|---|---|---|---|---|"]
    order = {"kvm": 0, "vsphere": 1, "both": 2}
    chosen = [r for r in RULES.values() if r.kind == kind]
    for r in sorted(chosen, key=lambda r: (order[r.platform], severity_rank(r.severity))):
        rows.append("| " + " | ".join(_cell(c) for c in (f"`{r.id}`", r.platform, r.severity, r.bad, r.good, r.why, r.fix)) + " |")
    return "\n".join(rows) + "\n"


def render_markdown() -> str:
    return _table("performance") + "\n" + SECURITY_INTRO + _table("security")


if __name__ == "__main__":
    print(INTRO + render_markdown(), end="")
