"""nightly.yaml validation: the shipped examples are valid; bad fields give one line naming them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from okdbench.nightly.config import ConfigError, load_config, parse_config, parse_duration
from tests.support._bounded_run import run_bounded

ROOT = Path(__file__).resolve().parent.parent
P = {"label": "kvm", "platform": "kvm", "spec": "kvm.yaml"}
Q = {"label": "vsphere", "platform": "vsphere", "kubeconfig": "kc"}


def test_example_config_is_valid():
    cfg = load_config(ROOT / "examples" / "nightly.yaml")
    assert [p.label for p in cfg.platforms] == ["vsphere", "kvm"]
    assert cfg.comparison() == ("vsphere", "kvm")
    assert cfg.platforms[1].soak == 1800 and cfg.platforms[1].timeout == 6 * 3600
    assert cfg.results_dir == ROOT / "examples" / ".." / "results"


def test_example_config_dry_run_names_real_suites_and_specs():
    import sys

    proc = run_bounded([sys.executable, "-m", "okdbench", "nightly", "--config", "examples/nightly.yaml", "--dry-run"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["vsphere", "kvm"]
    assert "suites/test_builds.py" in lines[1] and "--soak 1800s" in lines[1] and "--repeat 5" in lines[1]


def test_cronjob_config_is_valid():
    docs = list(yaml.safe_load_all((ROOT / "examples/scheduling/kubernetes/cronjob.yaml").read_text()))
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    cfg = parse_config(yaml.safe_load(cm["data"]["nightly.yaml"]), source=Path("/etc/okdbench/nightly.yaml"))
    assert cfg.lock_path == Path("/data/nightly.lock")
    assert all(p.kubeconfig.is_absolute() for p in cfg.platforms)


@pytest.mark.parametrize(
    "data, expected",
    [
        ({}, "platforms: required field is missing"),
        ({"platforms": [P]}, "platforms: a nightly compares two platform runs"),
        ({"platforms": [P, dict(Q, label="kvm")]}, "platforms[1].label: 'kvm' is used twice"),
        ({"platforms": [{"label": "kvm", "platform": "kvm"}, Q]}, "platforms[0]: give spec"),
        ({"platforms": [dict(P, soak="ten minutes"), Q]}, "platforms[0].soak: 'ten minutes' is not a duration"),
        ({"platforms": [dict(P, repeat=0), Q]}, "platforms[0].repeat: 0 is not allowed"),
        ({"platforms": [dict(P, platform="xen"), Q]}, "platforms[0].platform: 'xen' is not allowed"),
        ({"platforms": [P, Q], "notify": {"webhook_url": "file:///etc/passwd"}}, "notify.webhook_url:"),
        ({"platforms": [P, Q], "baseline": "esx"}, "baseline: 'esx' is not a platform label"),
        ({"platforms": [P, Q], "retention": {"keep": 3}}, "retention.keep: unknown field"),
        ({"platforms": [P, Q], "primary": "build.duration"}, "primary: "),
        ({"platforms": [P, Q], "primary": ["build.duration", ""]}, "primary[1]: "),
        ([1, 2], "the nightly config must be a YAML mapping"),
    ],
)
def test_errors_are_one_line_naming_the_field(data, expected):
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    assert str(exc.value).startswith(expected), str(exc.value)
    assert "\n" not in str(exc.value) and exc.value.exit_code == 2


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("platforms: [\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(bad)


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("10m", 600), ("4h", 14400), ("1d", 86400), (90, 90), ("2.5m", 150)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds
