"""User-facing errors: one line, naming the field and the fix; exit code 2."""

from __future__ import annotations

MAX_ERRORS = 20  # an input with more mistakes than this lists 20 of them, then "… and N more"


def bounded_lines(lines: list[str], limit: int = MAX_ERRORS) -> list[str]:
    if len(lines) <= limit:
        return list(lines)
    return list(lines[:limit]) + [f"… and {len(lines) - limit} more"]


class UserError(Exception):
    """Bad input or an unusable environment. str() is the whole message, one line.

    details: further lines, one per problem, when the input has several (a spec with three
    mistakes lists all three at once); the CLI prints them under the message, bounded.
    """

    exit_code = 2

    def __init__(self, *args: object, details: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__(*args)
        self.details = [" ".join(str(d).split()) for d in details]

    def __str__(self) -> str:
        text = super().__str__()
        return " ".join(text.split())
