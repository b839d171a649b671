"""Timelines of disruptions (resilience suite): what clients and the cluster saw around one event.

One JSON file per event in <run>/timelines/<name>.json, written once (atomically) by the suite
and read by the report's timeline chart. Reading is bounded and defensive: a file too large or
of the wrong shape is skipped with a one-line warning, never an exception.

    {"disruption": "power-off", "node": "...", "vm": "...", "t0": <epoch s>,
     "probes": [[t_rel_s, latency_ms, ok], ...],            # every request, from before t0 on
     "transitions": [[t_rel_s, "node"|"pod", name, state], ...]}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from results.store import _atomic_write_bytes

DIR = "timelines"
MAX_BYTES = 8 * 2**20
MAX_POINTS = 200_000


@dataclass
class Timeline:
    disruption: str
    node: str
    vm: str
    t0: float
    probes: list[tuple[float, float, bool]] = field(default_factory=list)
    transitions: list[tuple[float, str, str, str]] = field(default_factory=list)


def write_timeline(run_dir: Path, name: str, tl: Timeline) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:120]
    path = Path(run_dir) / DIR / f"{safe}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"disruption": tl.disruption, "node": tl.node, "vm": tl.vm, "t0": tl.t0,
           "probes": [[round(t, 3), round(ms, 2), bool(ok)] for t, ms, ok in tl.probes[:MAX_POINTS]],
           "transitions": [[round(t, 3), k, n, s] for t, k, n, s in tl.transitions[:MAX_POINTS]]}
    _atomic_write_bytes(path, json.dumps(doc, separators=(",", ":")).encode())
    return path


def _parse(doc: Any) -> Timeline:
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    probes = [(float(t), float(ms), bool(ok)) for t, ms, ok in doc.get("probes", [])[:MAX_POINTS]]
    transitions = [(float(t), str(k), str(n), str(s)) for t, k, n, s in doc.get("transitions", [])[:MAX_POINTS]]
    return Timeline(disruption=str(doc["disruption"]), node=str(doc.get("node", "")), vm=str(doc.get("vm", "")),
                    t0=float(doc.get("t0", 0.0)), probes=probes, transitions=transitions)


def read_timelines(run_dir: Path, warnings: list[str] | None = None) -> list[Timeline]:
    """Every readable timeline of one run, sorted by file name."""
    out = []
    for path in sorted((Path(run_dir) / DIR).glob("*.json")):
        try:
            if path.stat().st_size > MAX_BYTES:
                raise ValueError(f"larger than {MAX_BYTES // 2**20} MiB")
            out.append(_parse(json.loads(path.read_bytes())))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if warnings is not None:
                warnings.append(f"{path}: timeline skipped ({type(exc).__name__}: {str(exc)[:100]})")
    return out
