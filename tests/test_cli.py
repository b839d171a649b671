"""The okdbench command: help everywhere, one-line errors for bad specs."""

import os
import sys
from pathlib import Path

import pytest

from okdbench.cli import COMMANDS
from tests.support._bounded_run import run_bounded

ROOT = Path(__file__).resolve().parent.parent


def okdbench(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return run_bounded([sys.executable, "-m", "okdbench", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, **kw)


def test_top_level_help():
    out = okdbench("--help")
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command):
    out = okdbench(command, "--help")
    assert out.returncode == 0, out.stderr
    assert f"okdbench {command}" in out.stdout


MALFORMED = {
    "memory": ("nodes:\n  - {role: master, count: 3, vcpu: 4, memory: '16', disk: 120GiB}\n", "nodes[0].memory: '16' is not a size; use e.g. 16GiB"),
    "yaml": ("name: [unclosed\n", "not valid YAML"),
    "platform": ("platform: xen\n", "platform: 'xen'"),
    "cidr": ("network: {machine_cidr: 5}\n", "network.machine_cidr: 5 is not an address; write it as text"),
}

BASE = """\
name: okd-kvm
base_domain: poc.example.com
platform: kvm
kvm: {}
network: {machine_cidr: 198.18.10.0/24}
"""


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_spec_is_one_line_no_traceback(tmp_path, case):
    body, expected = MALFORMED[case]
    spec = tmp_path / "spec.yaml"
    if case == "memory":
        spec.write_text(BASE + body)
    elif case == "cidr":
        spec.write_text(BASE.replace("network: {machine_cidr: 198.18.10.0/24}\n", body)
                        + "nodes:\n  - {role: master, count: 1, vcpu: 4, memory: 16GiB, disk: 120GiB}\n")
    elif case == "platform":
        spec.write_text(BASE.replace("platform: kvm\n", body) + "nodes:\n  - {role: master, count: 1, vcpu: 4, memory: 16GiB, disk: 120GiB}\n")
    else:
        spec.write_text(body)
    out = okdbench("render", "--spec", str(spec), "--out", str(tmp_path / "out"))
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert out.returncode == 2
    assert len(lines) == 1 and expected in lines[0], out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "out").exists()


def test_doctor_reports_and_exits_by_what_is_required():
    out = okdbench("doctor", "--platform", "kvm")
    assert out.returncode in (0, 1)
    assert "libvirtd reachable" in out.stdout and "openshift-install" in out.stdout


def test_run_rejects_unknown_suite():
    out = okdbench("run", "--platform", "kvm", "--suite", "nosuch")
    assert out.returncode == 2 and "--suite" in out.stderr and "Traceback" not in out.stderr
