"""Text forms of audit results: the criterion's one-line detail and the CLI's tables."""

from __future__ import annotations

from collections import defaultdict

from provision.audit.compare import Comparison
from provision.audit.rules import RULES, Finding, count_by_severity, severity_rank, sort_findings


def _counts(findings: list[Finding]) -> str:
    return ", ".join(f"{n} {s}" for s, n in count_by_severity(findings).items() if n)


def criterion_summary(findings: list[Finding], n_vms: int) -> str:
    """One line, worst rule first: '3 findings on 2 VMs (1 critical, 2 high): critical kvm.cpu-model [master-0] …; …'."""
    if not findings:
        return f"no findings on {n_vms} VM(s)"
    by_rule: dict[str, list[Finding]] = defaultdict(list)
    for f in sort_findings(findings):
        by_rule[f.rule].append(f)
    parts = []
    for rule, fs in by_rule.items():
        where = sorted({f.node or f.vm for f in fs})
        # The detail is cut at 400 characters: 'all' keeps room for the rules after this one.
        if len(where) == n_vms > 1:
            shown = f"all {n_vms} VMs"
        else:
            shown = ", ".join(where[:3]) + (f" +{len(where) - 3}" if len(where) > 3 else "")
        parts.append(f"{fs[0].severity} {rule} [{shown}] {fs[0].observed}")
    noun = "finding" if len(findings) == 1 else "findings"
    return f"{len(findings)} {noun} on {n_vms} VM(s) ({_counts(findings)}): " + "; ".join(parts)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def findings_table(findings: list[Finding]) -> list[str]:
    if not findings:
        return ["no findings"]
    rows = [[f.severity, f.rule, f.where, f.observed] for f in sort_findings(findings)]
    out = _table(["SEVERITY", "RULE", "VM", "OBSERVED"], rows)
    out.append("")
    out.append("fixes:")
    for rule in dict.fromkeys(f.rule for f in sort_findings(findings)):
        out.append(f"  {rule}: {RULES[rule].fix}")
    out.append(f"total: {_counts(findings)}")
    return out


def comparison_table(cmp: Comparison, label_a: str, label_b: str) -> list[str]:
    rows = [[what, a, b, "<- differs" if differs else ""] for what, a, b, differs in cmp.rows]
    out = _table(["", label_a, label_b, ""], rows)
    out.append("")
    for f in cmp.findings:
        out.append(f"NOT COMPARABLE ({f.rule}) {f.role}: {f.observed}")
    for w in cmp.warnings:
        out.append(f"warning: {w}")
    out.append("comparable: yes" if cmp.comparable else f"comparable: no ({len(cmp.findings)} difference(s)); fix: {RULES['nodes.size-mismatch'].fix}")
    return out


def security_posture(findings: list[Finding], vms: list[str], platform: str) -> dict:
    """run.json `security`: per security rule of the platform, how many of the audited VMs comply.

    Self-contained (title and severity included) so reports read it without importing the rules.
    A finding on something other than an audited VM (the host, the vCenter session) concerns every VM.
    """
    audited = set(vms)
    rules = sorted((r for r in RULES.values() if r.kind == "security" and r.platform in (platform, "both")),
                   key=lambda r: (severity_rank(r.severity), r.id))
    rows = []
    for r in rules:
        hits = [f for f in findings if f.rule == r.id]
        failing = len(audited) if any(f.vm not in audited for f in hits) else len({f.vm for f in hits})
        rows.append({"id": r.id, "title": r.title, "severity": r.severity, "vms": len(audited),
                     "failing": failing, "observed": hits[0].observed if hits else ""})
    return {"platform": platform, "vms": sorted(audited), "rules": rows, "findings": count_by_severity(findings)}
