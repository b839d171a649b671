"""What a report of `okdbench demo` (kvm-tuned vs kvm-default) means, keyed on its verdicts: pure, no text.

The template (_demo_note.html.j2) turns these facts into translated sentences; this module only
decides which of them the data supports, so a test can check the choice without reading HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reports.model import MetricRow

DEMO_PAIR = ("kvm-default", "kvm-tuned")  # okdbench.demo.LABELS: the demo's baseline and candidate
DISK_PREFIXES = ("guest.disk.", "guest.etcd.")
CPU_PREFIXES = ("guest.cpu.",)


@dataclass
class DemoNote:
    emulated: bool
    runs: int  # runs per platform (the fewer of the two sides)
    disk_worse: list[MetricRow] = field(default_factory=list)  # kvm-tuned worse on disk/etcd
    disk_better: list[MetricRow] = field(default_factory=list)
    cpu_better: list[MetricRow] = field(default_factory=list)
    other: list[MetricRow] = field(default_factory=list)  # any other conclusive guest metric
    closest: MetricRow | None = None  # when nothing on the guests is conclusive: the nearest to it
    primary: MetricRow | None = None  # the demo's pre-registered question (okdbench.demo.PRIMARY)
    noisy_platform: str | None = None  # the primary's runs vary past the CV limit: on this platform (more than the other)
    noisy_cv: float | None = None  # ... by this run-to-run CV

    @property
    def conclusive(self) -> bool:
        return bool(self.disk_worse or self.disk_better or self.cpu_better or self.other)


def demo_note(summary: list[MetricRow], baseline: str, candidate: str, emulated: bool) -> DemoNote | None:
    """The demo's explanation when the report compares kvm-tuned with kvm-default, else None."""
    if (baseline, candidate) != DEMO_PAIR:
        return None
    guest = [m for m in summary if m.metric.startswith("guest.")]
    runs = min((min(m.runs_base, m.runs_cand) for m in guest), default=0)
    note = DemoNote(emulated=emulated, runs=runs, primary=next((m for m in guest if m.primary), None))
    for m in guest:
        if m.verdict not in ("better", "worse"):
            continue
        if m.metric.startswith(DISK_PREFIXES):
            (note.disk_worse if m.verdict == "worse" else note.disk_better).append(m)
        elif m.metric.startswith(CPU_PREFIXES) and m.verdict == "better":
            note.cpu_better.append(m)
        else:
            note.other.append(m)
    p = note.primary
    if p is not None and p.noisy and p.verdict != "not enough samples":
        note.noisy_platform, note.noisy_cv = max(((baseline, p.cv_base or 0.0), (candidate, p.cv_cand or 0.0)),
                                                 key=lambda side: side[1])
    if not note.conclusive:
        # More runs help a metric that is merely undecided, not one whose runs vary past the limit.
        candidates = [m for m in guest if m.p_holm is not None and m.verdict == "no significant difference"]
        note.closest = min(candidates, key=lambda m: m.p_holm, default=None)  # type: ignore[arg-type,return-value]
    return note
