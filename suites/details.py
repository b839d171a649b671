"""A criterion's one-line detail that names every object: reasons are shortened to fit, names never.

A detail is read in a report cell and bounded (results.schema.DETAIL_LIMIT). When a list of
unhealthy objects does not fit, the reasons go first (long ones, then all), then the problems
themselves; the names stay, all of them, since "which operators?" is the question the detail answers.
"""

from __future__ import annotations

import re

# What a detail aims for (reason + must-gather path + notes); plugin and schema cut one only
# beyond results.schema.DETAIL_LIMIT, so a list of names longer than this is still kept whole.
BUDGET = 600

_REASON = re.compile(r" \([^()]*\)")


def named(head: str, items: dict[str, list[str]], room: int = BUDGET) -> str:
    """'head: name: p1, p2; name2: p3' shortened level by level until it fits in `room`.

    Levels: full; reasons in parentheses dropped; problems dropped (names only). The names-only
    form is returned even when it is longer than room: a name is never cut.
    """
    names = sorted(items)
    levels = [
        lambda n: f"{n}: {', '.join(items[n])}" if items[n] else n,
        lambda n: f"{n}: {', '.join(_REASON.sub('', p) for p in items[n])}" if items[n] else n,
        lambda n: n,
    ]
    text = head
    for level in levels:
        text = f"{head}: " + "; ".join(level(n) for n in names) if names else head
        if len(text) <= room:
            return text
    return f"{head}: " + ", ".join(names) if names else head
