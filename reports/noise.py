"""What to fix first when runs are too noisy to judge: the likely sources of the noise and what fixing it buys.

"Runs needed: 4197" is honest but useless; a manager needs to hear that the measurements
themselves must get quieter, where the noise most likely comes from, and how many runs it would
take once they are. Pure: summary rows and run facts in, sentences out.
"""

from __future__ import annotations

import math

from reports import stats
from reports.i18n import ENGLISH, Language
from reports.model import MetricRow, Options

QUIET_CV = 0.05  # run-to-run variation a dedicated, idle host typically reaches


def noise_advice(
    rows: list[MetricRow],
    emulated_runs: dict[str, tuple[int, int]],
    opts: Options,
    shown_cap: int,
    tr: Language = ENGLISH,
    contended_runs: dict[str, tuple[int, int]] | None = None,
) -> list[str]:
    """Sentences, most important first; empty when nothing is too noisy.

    emulated_runs / contended_runs: platform -> (runs affected, runs in the comparison); contended
    runs come from the conditions section when it is there.
    """
    _, ngettext = tr.gettext, tr.ngettext
    noisy = [r for r in rows if r.verdict == "variance too high"]
    too_many = [r for r in rows if r.runs_needed is not None and r.runs_needed > shown_cap]
    if not noisy and not too_many:
        return []
    out: list[str] = []
    worst = sorted(noisy, key=lambda r: -max(r.cv_base or 0.0, r.cv_cand or 0.0))
    if noisy:
        examples = ", ".join(
            f"{r.metric} {tr.pct(max(r.cv_base or 0.0, r.cv_cand or 0.0), decimals=0)}" for r in worst[:3]
        )
        out.append(
            ngettext(
                "Fix the noise first: %(n)s metric varies more than %(limit)s from run to run (%(examples)s), "
                "so no number of runs we can afford will judge it.",
                "Fix the noise first: %(n)s metrics vary more than %(limit)s from run to run (worst: %(examples)s), "
                "so no number of runs we can afford will judge them.",
                len(noisy),
            ) % {"n": len(noisy), "limit": tr.pct(opts.cv_limit, decimals=0), "examples": examples}
        )
    for platform, (n, total) in sorted(emulated_runs.items()):
        if n:
            out.append(
                _("Likely source: %(n)s of %(total)s runs on %(p)s ran on a software-emulated hypervisor "
                  "(QEMU TCG, no KVM acceleration), whose timings swing with the host's load; measure on a host "
                  "with KVM acceleration (/dev/kvm usable) before counting runs.") % {"n": n, "total": total, "p": platform}
            )
    for platform, (n, total) in sorted((contended_runs or {}).items()):
        if n:
            out.append(
                _("Likely source: %(n)s of %(total)s runs on %(p)s ran while the host was busy with other work; "
                  "schedule runs when the host is otherwise idle.") % {"n": n, "total": total, "p": platform}
            )
    if not any(n for n, _t in emulated_runs.values()) and not any(n for n, _t in (contended_runs or {}).values()):
        out.append(
            _("Likely source: the runs themselves (shared hosts, background jobs, caches warm on some nights only); "
              "compare the run conditions of the noisiest nights.")
        )
    quiet = stats.runs_needed(math.log1p(QUIET_CV), math.log1p(opts.detectable_difference), opts.alpha, opts.power)
    out.append(
        _("What it would take: at the %(quiet)s run-to-run variation of a quiet dedicated host, about %(n)s runs per "
          "platform detect a %(target)s difference with %(power)s power; at today's noise some metrics would need "
          "more than %(cap)s.") % {
            "quiet": tr.pct(QUIET_CV, decimals=0), "n": quiet, "target": tr.pct(opts.detectable_difference, decimals=0),
            "power": tr.pct(opts.power, decimals=0), "cap": shown_cap}
    )
    return out
