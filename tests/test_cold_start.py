"""Commands that read no results start without the analysis stack or the Kubernetes client.

A deterministic check of what is imported (python -X importtime), not a timing: the timings are
benchmarks/cold_start.py's job.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.support._bounded_run import run_bounded
from tests.test_render_pure import fake_home

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"pandas", "pyarrow", "matplotlib", "scipy", "kubernetes", "numpy", "ruptures"}


def imported(argv: list[str], env: dict[str, str]) -> set[str]:
    """Top-level packages a fresh `python -m okdbench ARGV` imported."""
    proc = run_bounded([sys.executable, "-X", "importtime", "-m", "okdbench", *argv], cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = re.findall(r"(?m)^import time:\s+\d+ \|\s+\d+ \|\s+([\w.]+)$", proc.stderr)
    assert len(names) > 50, "no -X importtime output: did the interpreter change its format?"
    return {n.split(".")[0] for n in names}


@pytest.mark.parametrize("argv", [["--help"], ["render", "--help"], ["report", "--help"], ["render"]],
                         ids=["help", "render-help", "report-help", "render"])
def test_no_analysis_stack_or_kube_client_at_start(argv, tmp_path):
    env = {**os.environ, "HOME": str(fake_home(tmp_path))}
    if argv == ["render"]:
        argv = ["render", "--spec", "examples/kvm-cluster.yaml", "--out", str(tmp_path / "out")]
    heavy = imported(argv, env) & HEAVY
    assert not heavy, f"okdbench {' '.join(argv)} imported {sorted(heavy)}; import them where they are used"
