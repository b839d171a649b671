"""Every command in README.md's ```sh blocks runs as written, or at least parses.

Commands that need no cluster run for real (render, nightly --dry-run, make -n); the others are
parsed by the real okdbench parser, and pytest lines are checked against the options the plugin
registers. A README line of a form this test does not know fails it: teach the test, don't skip.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import stat
import sys
from pathlib import Path

import pytest

from okdbench.cli import build_parser
from tests.support._bounded_run import run_bounded
from tests.test_render_pure import fake_home

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def readme_commands() -> list[str]:
    """The command lines of README.md's sh blocks, comments and blank lines dropped."""
    lines, inside = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() in ("```sh", "```bash", "```console") if not inside else False
            continue
        if inside:
            command = re.sub(r"(^|\s)#.*$", "", line).strip()
            if command:
                lines.append(command)
    return lines


COMMANDS = readme_commands()


def test_the_readme_has_commands_to_check():
    assert len(COMMANDS) >= 8 and any(c.startswith("okdbench provision") for c in COMMANDS)


def runs_for_real(argv: list[str]) -> bool:
    """okdbench commands that need no cluster and no hypervisor."""
    return argv[1] == "render" or (argv[1] == "nightly" and "--dry-run" in argv)


def _parse_okdbench(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args, extra = parser.parse_known_args(argv)
    except SystemExit:
        pytest.fail(f"okdbench {' '.join(argv)}: does not parse: {err.getvalue().strip()}")
    assert not extra or args.command == "run", f"okdbench {' '.join(argv)}: unrecognized {extra}"
    assert args.command, f"okdbench {' '.join(argv)}: no command"
    return args


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A current directory with the repository's examples and a HOME holding the SSH key they name."""
    cwd = tmp_path_factory.mktemp("readme")
    for name in ("examples", "suites"):
        (cwd / name).symlink_to(ROOT / name)
    env = {**os.environ, "HOME": str(fake_home(cwd)), "PYTHONPATH": str(ROOT)}
    return cwd, env


@pytest.fixture(scope="module")
def pytest_options() -> set[str]:
    proc = run_bounded([sys.executable, "-m", "pytest", "--help"], cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return set(re.findall(r"(?m)^\s+(--[a-z][\w-]*)", proc.stdout))


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs_as_written(command, sandbox, pytest_options):
    cwd, env = sandbox
    argv = shlex.split(command)
    if argv[0] == "okdbench":
        args = _parse_okdbench(argv[1:])
        for attr in ("spec", "config"):
            values = getattr(args, attr, None) or []
            for value in [values] if isinstance(values, str) else values:
                assert (ROOT / value).exists(), f"{command}: {value} does not exist in the repository"
        if runs_for_real(argv):
            proc = run_bounded([sys.executable, "-m", "okdbench", *argv[1:]], cwd=cwd, env=env)
            assert proc.returncode == 0, f"{command}: exit {proc.returncode}: {proc.stderr.strip()[-500:]}"
    elif argv[0] == "make":
        proc = run_bounded(["make", "-n", *argv[1:]], cwd=ROOT)
        assert proc.returncode == 0, f"{command}: {proc.stderr.strip()}"
    elif argv[0] == "pytest":
        assert all((ROOT / a).exists() for a in argv[1:] if a.startswith("suites")), command
        unknown = {a.split("=")[0] for a in argv[1:] if a.startswith("--")} - pytest_options
        assert not unknown, f"{command}: pytest does not know {sorted(unknown)}"
    elif argv[:3] == ["pip", "install", "-e"]:
        assert (ROOT / argv[3] / "pyproject.toml").exists(), command  # never run here: it would repoint the install
    else:
        pytest.fail(f"README command of an unknown form (teach tests/test_readme_commands.py): {command}")


def test_provision_without_workdir_uses_a_private_default(sandbox, tmp_path):
    cwd, env = sandbox
    spec = tmp_path / "c.yaml"
    spec.write_text((ROOT / "examples" / "kvm-cluster.yaml").read_text()
                    .replace("installer: openshift-install", "installer: okdbench-no-such-installer"))
    proc = run_bounded([sys.executable, "-m", "okdbench", "provision", "--spec", str(spec)], cwd=cwd, env=env)
    # Stops at the missing installer, with one line, after creating the work directory.
    assert proc.returncode != 0 and "okd.installer: okdbench-no-such-installer not found" in proc.stderr
    assert "Traceback" not in proc.stderr
    workdir = cwd / ".cache" / "work" / "okd-kvm"
    assert f"work directory {workdir}" in proc.stderr
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
