"""pydantic validation errors as the one line a user reads: YAML path, bad value, what is allowed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from plumbing.errors import MAX_ERRORS, bounded_lines  # noqa: F401 - re-exported for the models


_SECRET_FIELD_RE = re.compile(r"(?i)(url|token|password|passwd|secret|auth|api_?key|credential)[^.]*$")


def short(value: Any, limit: int = 60) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def yaml_path(loc: tuple[Any, ...]) -> str:
    """('nodes', 1, 'memory') -> 'nodes[1].memory'; pydantic's validator/union steps are dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "tagged-union", "list[", "literal[")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def one_line_error(exc: ValidationError) -> str:
    return error_lines(exc)[0]


def error_lines(exc: ValidationError) -> list[str]:
    """Every error pydantic found, one line each (the user fixes them all in one go)."""
    return [_one(err) for err in exc.errors(include_url=False)]


def _one(err: Any) -> str:
    path = yaml_path(err["loc"])
    msg = " ".join(str(err["msg"]).removeprefix("Value error, ").split())
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown field; remove it or check its spelling"
    if kind == "missing":
        return f"{path}: required field is missing"
    if re.match(r"^[a-z_]+(\[\d+\])?(\.[a-z_]+)*: ", msg):
        return msg  # a model validator that already names its own path
    bad = err.get("input")
    shown = "" if isinstance(bad, (dict, list)) or bad is None else f"{short(repr(bad))} "
    if _SECRET_FIELD_RE.search(path):
        # A URL or token field's value may be a secret (a webhook URL carries its token): never echoed.
        shown = ""
        msg = "this value is not allowed" if bad is not None and repr(bad)[1:-1] in msg else msg
    if shown and msg.startswith(short(repr(bad))):
        return f"{path}: {msg}"
    if not shown:
        return f"{path}: {msg[:1].lower()}{msg[1:]}"
    return f"{path}: {shown}is not allowed: {msg[:1].lower()}{msg[1:]}"


def read_yaml(path: Path | str, flag: str, what: str, error: type[Exception] | None = None) -> Any:
    """Parse a YAML file the user named with `flag`; every failure is one line naming the file and the fix.

    what: how to describe the expected file in the fix ("a cluster spec YAML (see examples/)").
    Bounded (size, UTF-8, depth, aliases): see plumbing.safe_load.
    """
    from plumbing.safe_load import InputError, read_yaml_file

    return read_yaml_file(path, flag, what, error or InputError)
