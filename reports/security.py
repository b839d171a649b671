"""The report's Security posture table: per security rule, how many node VMs comply on each platform. Pure.

Reads run.json `security` (written by the security-audit criterion: per rule its id, title,
severity, VMs audited and VMs failing) of the newest run of each platform that has one. A run
folder from elsewhere with a malformed `security` entry is left out and listed in `unreadable`;
the template words every sentence (through gettext).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reports.i18n import ENGLISH, N_, Language
from results.schema import RunInfo

SEVERITY_ORDER = ("critical", "high", "medium", "low")

# The titles provision/audit's security rules record (English), translated where shown; a title not
# listed here (a newer rule, a run from elsewhere) is shown as recorded. tests/test_report_i18n.py
# keeps the list in step with the rules.
RULE_TITLES = frozenset((
    N_("VM not confined by sVirt (SELinux/AppArmor)"),
    N_("QEMU runs as root"),
    N_("Graphical console reachable from the network without TLS or auth"),
    N_("libvirt management API on plain TCP"),
    N_("Node ignition readable by other host users"),
    N_("Node ignition left on the host after the node joined"),
    N_("Node disk image readable or writable by others"),
    N_("No UEFI Secure Boot (informational)"),
    N_("No virtual TPM (informational)"),
    N_("Ignition left in guestinfo after install"),
    N_("Console copy/paste enabled"),
    N_("Guest may disconnect devices"),
    N_("Guest may shrink/wipe virtual disks"),
    N_("Guest may write large VMX informational data"),
    N_("Several simultaneous console sessions allowed"),
    N_("VM log files not bounded"),
    N_("VM files not encrypted (informational)"),
    N_("vCenter reached without TLS verification"),
))


@dataclass(frozen=True)
class PostureCell:
    compliant: int
    total: int

    @property
    def ok(self) -> bool:
        return self.compliant == self.total


@dataclass(frozen=True)
class PostureRow:
    rule: str
    title: str
    severity: str
    cells: tuple[PostureCell | None, ...]  # one per platform, None: the rule does not apply there


@dataclass
class SecurityPosture:
    platforms: list[str]
    runs: dict[str, str]  # platform -> run id the column comes from
    rows: list[PostureRow]
    unreadable: list[str] = field(default_factory=list)  # run ids whose `security` entry was malformed
    missing: list[str] = field(default_factory=list)  # platforms without any security audit

    def fully_met(self, platform: str) -> tuple[int, int]:
        """(rules every VM complies with, rules that apply) on one platform."""
        i = self.platforms.index(platform)
        cells = [r.cells[i] for r in self.rows if r.cells[i] is not None]
        return sum(1 for c in cells if c.ok), len(cells)  # type: ignore[union-attr]


def _rules(entry: Any) -> list[dict] | None:
    """The rule rows of one run's `security`, or None when they are not what the criterion writes."""
    if not isinstance(entry, dict) or not isinstance(entry.get("rules"), list):
        return None
    rows = []
    for r in entry["rules"]:
        if not (isinstance(r, dict) and isinstance(r.get("id"), str) and isinstance(r.get("vms"), int)
                and isinstance(r.get("failing"), int) and 0 <= r["failing"] <= r["vms"]):
            return None
        rows.append(r)
    return rows


def security_posture(runs: list[RunInfo], platforms: list[str], tr: Language = ENGLISH) -> SecurityPosture | None:
    """The table for these platforms, or None when no run recorded a security audit (titles in `tr`'s language)."""
    newest: dict[str, tuple[RunInfo, list[dict]]] = {}
    unreadable = []
    for run in sorted(runs, key=lambda r: (r.started or "", r.run_id)):
        if run.platform not in platforms or "security" not in run.extra:
            continue
        rules = _rules(run.extra["security"])
        if rules is None:
            unreadable.append(run.run_id)
            continue
        newest[run.platform] = (run, rules)
    if not newest:
        return None
    meta: dict[str, tuple[str, str]] = {}
    cells: dict[str, dict[str, PostureCell]] = {}
    for platform, (_, rules) in newest.items():
        for r in rules:
            meta.setdefault(r["id"], (str(r.get("title", "")), str(r.get("severity", ""))))
            cells.setdefault(r["id"], {})[platform] = PostureCell(r["vms"] - r["failing"], r["vms"])
    order = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    rows = [PostureRow(rule, tr.gettext(meta[rule][0]) if meta[rule][0] in RULE_TITLES else meta[rule][0], meta[rule][1],
                       tuple(cells[rule].get(p) for p in platforms))
            for rule in sorted(meta, key=lambda k: (order.get(meta[k][1], 9), k))]
    return SecurityPosture(list(platforms), {p: newest[p][0].run_id for p in newest}, rows, unreadable,
                           [p for p in platforms if p not in newest])
