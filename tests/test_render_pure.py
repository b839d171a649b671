"""`okdbench render` depends on the spec alone: no process started, no socket opened, no libvirt,
and the same bytes whether or not the machine has libvirtd, QEMU or a usable /dev/kvm."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support._bounded_run import run_bounded

ROOT = Path(__file__).resolve().parents[1]

# Runs render in this process's child with an audit hook recording every process start and socket
# connection, then reports them and whether libvirt was imported.
PROBE = """
import json, sys
events = []
def hook(event, args):
    if event in ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.fork",
                 "socket.connect"):
        events.append(event)
sys.addaudithook(hook)
from okdbench.cli import main
rc = main(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump({"rc": rc, "events": events, "libvirt": "libvirt" in sys.modules}, f)
"""


def fake_home(tmp_path: Path) -> Path:
    """A HOME whose ~/.ssh/id_ed25519.pub exists, as the example spec names it."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    (home / ".ssh" / "id_ed25519.pub").write_bytes(key + b" okdbench-test\n")
    return home


def _render(tmp_path: Path, out: Path, env: dict[str, str]) -> dict[Path, bytes]:
    report = tmp_path / "probe.json"
    proc = run_bounded([sys.executable, "-c", PROBE, str(report), "render", "--spec", "examples/kvm-cluster.yaml",
                        "--out", str(out)], cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(report.read_text())
    assert seen == {"rc": 0, "events": [], "libvirt": False}, seen
    files = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    shutil.rmtree(out)
    return files


def test_render_is_pure_and_the_same_on_any_host(tmp_path):
    home = fake_home(tmp_path)
    out = tmp_path / "out"
    here = _render(tmp_path, out, {**os.environ, "HOME": str(home)})
    # No libvirtd reachable, no QEMU on PATH: a machine where nothing could be probed.
    nowhere = {**os.environ, "HOME": str(home), "PATH": str(Path(sys.executable).parent),
               "LIBVIRT_DEFAULT_URI": f"qemu+unix:///system?socket={tmp_path}/no-such-socket"}
    assert _render(tmp_path, out, nowhere) == here
    domains = [v.decode() for k, v in here.items() if k.parts[0] == "domains"]
    assert len(domains) == 6
    # domain_type: auto renders as a KVM host gets it; provision resolves auto by probing.
    assert all('<domain type="kvm">' in d and '<cpu mode="host-passthrough"' in d for d in domains)
