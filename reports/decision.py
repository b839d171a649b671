"""The decision in five lines or fewer: per platform the criteria that failed, the metrics worse and by how much, the cost.

Management asked one question (can we move, and what does it cost?); this is the answer they read
first, before any table. Pure: the report's rows in, sentences out.
"""

from __future__ import annotations

import math

from reports.i18n import ENGLISH, Language
from reports.model import CostTable, CriterionRow, MetricRow

SHOWN = 3  # metrics named per line; the rest are counted


def decision_lines(
    platforms: list[str],
    summary: list[MetricRow],
    criteria: list[CriterionRow],
    costs: CostTable | None,
    tr: Language = ENGLISH,
) -> list[str]:
    _, ngettext = tr.gettext, tr.ngettext
    base, cand = platforms
    lines = []
    for p in platforms:
        parts = []
        failed = [c for c in criteria if c.cells.get(p) is not None and c.cells[p].checked and c.cells[p].passed < c.cells[p].checked]
        if failed:
            names = ", ".join(f"{c.criterion} ({c.cells[p].passed}/{c.cells[p].checked})" for c in failed[:SHOWN])
            more = len(failed) - SHOWN
            parts.append(
                ngettext("%(n)s criterion failed: %(names)s", "%(n)s criteria failed: %(names)s", len(failed))
                % {"n": len(failed), "names": names}
                + (" " + _("and %(n)s more") % {"n": more} if more > 0 else "")
            )
        else:
            parts.append(_("no criterion failed"))
        # A metric is worse on the candidate when the verdict says so, worse on the baseline when
        # the candidate is better; "by how much" is then the baseline relative to the candidate.
        worse = []
        for r in summary:
            if r.ratio is None or r.ratio <= 0 or not math.isfinite(r.ratio):
                continue
            if p == cand and r.verdict == "worse":
                worse.append((r.metric, r.ratio))
            elif p == base and r.verdict == "better":
                worse.append((r.metric, 1.0 / r.ratio))
        worse.sort(key=lambda m: -abs(math.log(m[1])))
        if worse:
            named = ", ".join(f"{m} {tr.ratio_pct(ratio)}" for m, ratio in worse[:SHOWN])
            more = len(worse) - SHOWN
            parts.append(
                ngettext("%(n)s metric worse than on %(other)s: %(named)s", "%(n)s metrics worse than on %(other)s: %(named)s", len(worse))
                % {"n": len(worse), "other": base if p == cand else cand, "named": named}
                + (" " + _("and %(n)s more") % {"n": more} if more > 0 else "")
            )
        else:
            parts.append(_("no metric significantly worse than on %(other)s") % {"other": base if p == cand else cand})
        if costs is not None and p in costs.totals:
            parts.append(_("%(years)s-year cost %(amount)s %(currency)s") % {
                "years": costs.years, "amount": tr.num(int(round(costs.totals[p]))), "currency": costs.currency})
        lines.append(p + tr.sep(":") + tr.sep(";").join(parts) + ".")
    inconclusive = [r for r in summary if r.verdict in ("variance too high", "not enough samples")]
    if inconclusive:
        lines.append(
            ngettext("%(n)s metric cannot be judged yet (see “What to fix first”).",
                     "%(n)s metrics cannot be judged yet (see “What to fix first”).", len(inconclusive))
            % {"n": len(inconclusive)}
        )
    return lines
