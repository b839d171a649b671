"""Bounded reading of every file okdbench parses: size, UTF-8, YAML aliases and depth, JSON depth.

A file okdbench reads may come from anywhere (a colleague's results folder, a generated
kubeconfig, a typo'd path to a binary). Whatever it holds, reading it ends in the parsed data or
one `InputError` line naming the file and what to fix, in bounded time and memory:

- size: at most MAX_DOC_BYTES per document (a spec, kubeconfig, pull secret, run.json…) and
  MAX_LINE_BYTES per JSONL line;
- text: UTF-8, or an error naming the byte offset of the first bad byte;
- YAML: a SafeLoader that refuses nesting deeper than MAX_DEPTH, recursive aliases
  (`a: &a {x: *a}`), and documents whose aliases expand to more than MAX_NODES nodes (a
  "billion laughs" bomb constructs cheaply, but every walk over it — secret registration,
  validation, json.dumps — is exponential);
- JSON: nesting deeper than MAX_DEPTH refused (counted before json.loads, whose C decoder
  would otherwise raise RecursionError around depth 1,000).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from plumbing.errors import UserError

MAX_DOC_BYTES = 4 * 2**20  # 4 MiB: a big kubeconfig is ~100 KiB, a pull secret ~3 KiB
MAX_LINE_BYTES = 2**20  # 1 MiB per results line: a sample is ~300 bytes
MAX_DEPTH = 64  # nesting levels; real specs and kubeconfigs use fewer than 10
MAX_NODES = 200_000  # YAML nodes after alias expansion; a real kubeconfig has a few hundred


class InputError(UserError):
    """A file cannot be read or parsed within the bounds. str() is one line naming the file."""


class _LimitError(Exception):
    """Internal: a bound was hit while composing YAML."""


def _short(value: Any, limit: int = 80) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------ bytes and text


def read_bytes(path: Path | str, flag: str, what: str, error: type[Exception] = InputError,
               max_bytes: int = MAX_DOC_BYTES) -> bytes:
    """The file's bytes, at most max_bytes; every failure is one line naming `flag` and the file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{flag}: {path} does not exist; pass the path of {what}") from None
    except IsADirectoryError:
        raise error(f"{flag}: {path} is a directory; pass the path of {what}") from None
    except OSError as exc:
        raise error(f"{flag}: cannot read {path} ({exc.strerror or type(exc).__name__}); check the path and its permissions") from None
    if len(data) > max_bytes:
        raise error(f"{flag}: {path} is larger than {max_bytes // 2**20} MiB; pass the path of {what}")
    return data


def decode_utf8(data: bytes, where: str, error: type[Exception] = InputError) -> str:
    """UTF-8 text (a leading BOM dropped), or one line with the offset of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{where}: not UTF-8 text (bad byte 0x{data[exc.start]:02x} at byte offset {exc.start}); "
                    "save the file as UTF-8") from None


def read_text(path: Path | str, flag: str, what: str, error: type[Exception] = InputError,
              max_bytes: int = MAX_DOC_BYTES) -> str:
    data = read_bytes(path, flag, what, error, max_bytes)
    return decode_utf8(data, f"{flag} {path}", error)


# ------------------------------------------------------------------ YAML


class BoundedSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader with bounded depth, no recursive aliases and bounded alias expansion."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:  # type: ignore[override]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _LimitError(f"nested deeper than {MAX_DEPTH} levels at line {mark.line + 1}")
            return Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_str(self, node: ScalarNode) -> str:  # type: ignore[override]
        value = super().construct_yaml_str(node)
        _refuse_surrogates(value, f"line {node.start_mark.line + 1}")
        return value

    def get_single_node(self) -> Node | None:  # type: ignore[override]
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node


def _refuse_surrogates(text: str, where: str) -> None:
    # "\ud800" escapes decode to lone surrogates: not text, and every later write or encode fails.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _LimitError(f"a string with an invalid \\u escape (lone surrogate) at {where}") from None


BoundedSafeLoader.add_constructor("tag:yaml.org,2002:str", BoundedSafeLoader.construct_yaml_str)


def _check_expansion(root: Node) -> None:
    """Refuse cycles (recursive aliases), graphs that expand to more than MAX_NODES nodes or nest
    deeper than MAX_DEPTH once aliases are followed.

    An alias is the same Node object reached twice, so the expanded size is computed once per
    node (memoised) and cycles are the nodes met again while still on the path.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    # Iterative post-order walk: depth is bounded by MAX_DEPTH already, but no recursion is needed.
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            total = 1 + sum(size[id(c)] for c in children)
            if total > MAX_NODES:
                raise _LimitError(f"aliases expand to more than {MAX_NODES:,} nodes (an alias bomb?)")
            size[key] = total
            # Aliases nest too: an anchor holding an alias to a deep anchor is deeper than either.
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if depth[key] > MAX_DEPTH:
                raise _LimitError(f"aliases nest deeper than {MAX_DEPTH} levels")
            continue
        if key in size:
            continue
        if key in on_path:
            mark = node.start_mark
            raise _LimitError(f"a recursive alias at line {mark.line + 1} (an anchor used inside itself)")
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                mark = child.start_mark
                raise _LimitError(f"a recursive alias at line {mark.line + 1} (an anchor used inside itself)")
            if id(child) not in size:
                stack.append((child, False))


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def parse_yaml(text: str, where: str, error: type[Exception] = InputError) -> Any:
    """Parse one YAML document within the bounds; errors are one line starting with `where`."""
    try:
        return yaml.load(text, Loader=BoundedSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except _LimitError as exc:
        raise error(f"{where}: refused: {exc}; simplify the file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None)
        reason = f" ({_short(problem, 60)})" if problem else ""
        raise error(f"{where}: not valid YAML{at}{reason}; fix the syntax") from None
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:
        # e.g. an integer of more than 4,300 digits, a timestamp out of range
        raise error(f"{where}: not valid YAML ({_short(exc, 60)}); fix the value") from None


def read_yaml_file(path: Path | str, flag: str, what: str, error: type[Exception] = InputError) -> Any:
    """Read, decode and parse a YAML file the user named with `flag`, within the bounds."""
    text = read_text(path, flag, what, error)
    return parse_yaml(text, f"{flag} {path}", error)


# ------------------------------------------------------------------ JSON

# Strings may hold brackets: drop them before counting nesting.
_JSON_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS_RE = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """Deepest bracket nesting of a JSON text (strings ignored); cheap enough for every line."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return text.count("[") + text.count("{")
    depth = deepest = 0
    for m in _BRACKETS_RE.finditer(_JSON_STRING_RE.sub('""', text)):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89a-fA-F]")


def _walk_strings(data: Any) -> None:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _refuse_surrogates(item, "a JSON string")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_json(text: str | bytes, where: str, error: type[Exception] = InputError) -> Any:
    """json.loads within the depth bound; errors are one line starting with `where`."""
    if isinstance(text, bytes):
        text = decode_utf8(text, where, error)
    if json_depth(text) > MAX_DEPTH:
        raise error(f"{where}: refused: JSON nested deeper than {MAX_DEPTH} levels; simplify the file")
    try:
        data = json.loads(text)
        if _SURROGATE_ESCAPE_RE.search(text):
            _walk_strings(data)
        return data
    except _LimitError as exc:
        raise error(f"{where}: refused: {exc}; fix the value") from None
    except json.JSONDecodeError as exc:
        raise error(f"{where}: not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}); fix the syntax") from None
    except (ValueError, RecursionError) as exc:
        raise error(f"{where}: not valid JSON ({_short(exc, 60)}); fix the value") from None


def read_json_file(path: Path | str, flag: str, what: str, error: type[Exception] = InputError,
                   max_bytes: int = MAX_DOC_BYTES) -> Any:
    data = read_bytes(path, flag, what, error, max_bytes)
    return parse_json(data, f"{flag} {path}", error)
