"""User-facing errors: one line, naming the field and the fix; exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an unusable environment. str() is the whole message, one line."""

    exit_code = 2

    def __str__(self) -> str:
        text = super().__str__()
        return " ".join(text.split())
