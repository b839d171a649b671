"""One audit rule's row (id, platform, severity, bad/good, why, fix, rule set) and the severity scale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")
Kind = Literal["performance", "security"]
KINDS: tuple[Kind, ...] = ("performance", "security")


def severity_rank(severity: str) -> int:
    """critical=0 … low=3: lower is worse."""
    return SEVERITIES.index(severity)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Rule:
    id: str
    platform: Literal["kvm", "vsphere", "both"]
    severity: Severity
    title: str
    bad: str
    good: str
    why: str
    fix: str
    kind: Kind = "performance"
