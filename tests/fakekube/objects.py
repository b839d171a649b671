"""Read the captured objects in tests/data/real-objects/ (List, *List, single object, JSON or YAML).

Vendored from real clusters; SOURCES.md beside them says where each came from and what state it shows."""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import yaml

REAL_OBJECTS = Path(os.environ.get("OKDBENCH_REAL_OBJECTS", Path(__file__).resolve().parents[1] / "data" / "real-objects"))


@functools.lru_cache(maxsize=None)
def _load(path: str) -> tuple:
    data = yaml.safe_load(Path(path).read_text())
    items = data.get("items") if isinstance(data, dict) and "items" in data else [data]
    return tuple(items)


def real(name: str) -> list[dict]:
    """Objects from one file of real-objects/ (deep copies: callers script changes on them)."""
    path = REAL_OBJECTS / name
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such captured object file; see {REAL_OBJECTS / 'SOURCES.md'}")
    out = []
    for obj in _load(str(path)):
        obj = copy.deepcopy(obj)
        md = obj.setdefault("metadata", {})
        # The store assigns its own versions; captured ones would be from another cluster's etcd.
        md.pop("resourceVersion", None)
        out.append(obj)
    return out
