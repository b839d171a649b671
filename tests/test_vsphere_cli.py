"""`okdbench render|provision|destroy` for vSphere, as a user runs them: subprocess, exit codes, output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.vcsim import prepare_template, vsphere_spec_data
from tests.support._bounded_run import run_bounded

REPO = Path(__file__).resolve().parents[1]


def okdbench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_bounded([sys.executable, "-m", "okdbench", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_render_example_end_to_end(tmp_path):
    proc = okdbench("render", "--spec", "examples/vsphere-cluster.yaml", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(tmp_path / "install-config.yaml"), str(tmp_path / "vsphere-plan.json")]
    plan = json.loads((tmp_path / "vsphere-plan.json").read_text())
    assert len(plan["vms"]) == 6


@pytest.mark.needs_vcsim
def test_cli_provision_destroy_and_wrong_password(vcsim_fresh, tmp_path):
    sim = vcsim_fresh
    prepare_template(sim.connect())
    data = vsphere_spec_data(sim, name="cli-sim")
    data["okd"] = {"guest": "testguest"}  # VMs only: no openshift-install at this level
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    env = sim.env()

    up = okdbench("provision", "--spec", str(spec_file), "--workdir", str(tmp_path / "work"), env=env)
    assert up.returncode == 0, up.stderr
    out = json.loads(up.stdout)
    assert [v["name"] for v in out["vms"]] == ["cli-sim-bootstrap", "cli-sim-master-0", "cli-sim-worker-0"]
    assert all(v["ref"].startswith("vm-") for v in out["vms"])

    bad = okdbench("destroy", "--spec", str(spec_file), env={**env, "VSPHERE_PASSWORD": "x" + sim.password})
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        f"okdbench destroy: error: vsphere.credentials: vCenter 127.0.0.1:{sim.port} rejected the login "
        "(wrong username or password); fix $VSPHERE_USERNAME/$VSPHERE_PASSWORD")
    assert "Traceback" not in bad.stderr

    # --insecure works, loudly; the verified default then finds nothing left (idempotent).
    down = okdbench("destroy", "--spec", str(spec_file), "--insecure", env=env)
    assert down.returncode == 0, down.stderr
    assert "TLS verification of vCenter 127.0.0.1 is OFF" in down.stderr
    assert "removed /DC0/vm/cli-sim\n" in down.stdout
    again = okdbench("destroy", "--spec", str(spec_file), env=env)
    assert again.returncode == 0 and again.stdout.strip() == "nothing to remove for cli-sim"

    for proc in (up, bad, down, again):
        assert sim.password not in proc.stdout + proc.stderr
    for path in (tmp_path / "work").rglob("*"):
        if path.is_file():
            assert sim.password not in path.read_text(errors="replace")
