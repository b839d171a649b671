"""Malformed input, 1,000 generated cases per reader: a one-line error naming the problem, or a
skipped file with a warning — never a traceback, never an unexpected exception."""

from __future__ import annotations

import base64
import copy
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plumbing.errors import UserError
from okdbench.nightly.config import ConfigError, load_config, parse_config
from provision.spec import SpecError, load_spec, parse_spec
from reports.costs import load_costs, parse_costs

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["16GiB", "0", "-1", "1e309", "198.18.0.0/16", "198.18.0.0/30", "198.18.0.4/32", "198.18.0.0/29", "198.18.0.7", "kvm", "vsphere", "master", "10m", "x" * 300, "\n\n", "${X}"]),
)
values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=12), c, max_size=4)),
                      max_leaves=5)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated(draw, base: dict) -> Any:
    """A valid document with 1-3 random mutations: a value replaced, a key deleted or added."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        if not path:
            if draw(st.booleans()):
                doc = draw(values)
            continue
        parent = doc
        try:
            for p in path[:-1]:
                parent = parent[p]
        except (KeyError, IndexError, TypeError):
            continue
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        key = path[-1]
        if action == "replace":
            parent[key] = draw(values)
        elif action == "delete" and isinstance(parent, dict):
            parent.pop(key, None)
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
    return doc


def assert_one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text, repr(text)
    assert len(text) < 1000


# ------------------------------------------------------------------ cluster spec

SPEC = {
    "name": "okd1", "base_domain": "example.test", "platform": "kvm",
    "okd": {"version": "4.15", "guest": "fcos"},
    "network": {"machine_cidr": "198.18.0.0/24", "api_vip": "198.18.0.5", "ingress_vip": "198.18.0.6"},
    "nodes": [
        {"role": "bootstrap", "count": 1, "vcpu": 4, "memory": "16GiB", "disk": "120GiB"},
        {"role": "master", "count": 3, "vcpu": 4, "memory": "16GiB", "disk": "120GiB", "mac_prefix": "52:54:00"},
        {"role": "worker", "count": 2, "vcpu": 4, "memory": "8GiB", "disk": "120GiB"},
    ],
    "kvm": {"uri": "qemu:///system", "tuning": {"disk_cache": "none"}},
}


def _spec_ok_or_one_line(data: Any) -> None:
    try:
        spec = parse_spec(data)
    except SpecError as exc:
        assert_one_line(exc)
        return
    # A spec that validates must be usable: every machine gets a MAC and an IP.
    try:
        machines = spec.machines()
    except SpecError as exc:
        assert_one_line(exc)
        return
    assert len({m.mac for m in machines}) == len(machines)
    assert len({m.ip for m in machines}) == len(machines)


@SETTINGS
@given(mutated(SPEC))
def test_spec_mutations(data):
    _spec_ok_or_one_line(data)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(st.text(max_size=200))
def test_spec_file_garbage(text):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "spec.yaml"
        p.write_text(text)
        try:
            load_spec(p)
        except SpecError as exc:
            assert_one_line(exc)


# ------------------------------------------------------------------ nightly config

NIGHTLY = {
    "results_dir": "results", "reports_dir": "reports/out", "baseline": "vsphere", "candidate": "kvm",
    "platforms": [
        {"label": "vsphere", "platform": "vsphere", "kubeconfig": "vs.kubeconfig", "suites": ["builds"], "repeat": 3, "soak": "10m"},
        {"label": "kvm", "platform": "kvm", "spec": "kvm.yaml", "repeat": 3, "timeout": "4h"},
    ],
    "retention": {"keep_jsonl_runs": 14},
    "notify": {"webhook_url": "https://hooks.example.com/x", "timeout": "10s", "retries": 3},
}


@SETTINGS
@given(mutated(NIGHTLY))
def test_nightly_config_mutations(data):
    try:
        cfg = parse_config(data)
    except ConfigError as exc:
        assert_one_line(exc)
        return
    cfg.comparison()
    assert all(p.timeout > 0 and p.soak >= 0 for p in cfg.platforms)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_nightly_config_file_garbage(text):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "nightly.yaml"
        p.write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            load_config(p)
        except ConfigError as exc:
            assert_one_line(exc)


# ------------------------------------------------------------------ costs file

COSTS = {
    "currency": "EUR", "years": 3, "example": True,
    "platforms": {
        "vsphere": {"hosts": 4, "cores_per_host": 32, "licence_per_core_per_year": 100, "support_per_year": 5000},
        "kvm": {"hosts": 4, "cores_per_host": 32, "support_per_year": 2000, "admin_fte": 0.5, "fte_cost_per_year": 90000},
    },
}


@SETTINGS
@given(mutated(COSTS))
def test_costs_mutations(data):
    try:
        table = parse_costs(data)
    except UserError as exc:
        assert_one_line(exc)
        return
    assert set(table.totals) == set(str(p) for p in data["platforms"])


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(st.text(max_size=200))
def test_costs_file_garbage(text):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "costs.yaml"
        p.write_text(text)
        try:
            load_costs(p)
        except UserError as exc:
            assert_one_line(exc)


@SETTINGS
@given(
    prefix=st.integers(8, 32),
    counts=st.tuples(st.integers(0, 2), st.integers(0, 5), st.integers(0, 100)),
    explicit=st.lists(st.integers(0, 300), max_size=6),
    mac_prefix=st.sampled_from([None, "52:54:00", "52:54:00:ab", "52:54:00:ab:cd", "00:50:56"]),
)
def test_spec_network_capacity_and_addresses(prefix, counts, explicit, mac_prefix):
    """Small networks, many nodes, explicit addresses that collide: a one-line error or unique IPs and MACs."""
    data = copy.deepcopy(SPEC)
    data["network"] = {"machine_cidr": f"198.18.0.0/{max(prefix, 15)}" if prefix < 15 else f"198.18.0.0/{prefix}"}
    for group, count in zip(data["nodes"], counts):
        group["count"] = count
        group.pop("mac_prefix", None)
        if mac_prefix:
            group["mac_prefix"] = mac_prefix
    if explicit:
        data["nodes"][1]["ips"] = [f"198.18.{n // 256}.{n % 256}" for n in explicit]
    _spec_ok_or_one_line(data)


# ------------------------------------------------------------------ kubeconfig shapes

KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "admin",
    "clusters": [{"name": "fake", "cluster": {"server": "https://127.0.0.1:1", "certificate-authority-data": "bm90LWEtY2E="}}],
    "users": [{"name": "admin", "user": {"token": "sha256~CanaryKubeTok5a1f93"}}],  # CANARY_KUBE
    "contexts": [{"name": "admin", "context": {"cluster": "fake", "user": "admin"}}],
}
_kc_tmp = tempfile.TemporaryDirectory(prefix="okdbench-prop-kubeconfig-")
_kc_counter = itertools.count()


def _kubeconfig_file(doc: Any) -> Path:
    p = Path(_kc_tmp.name) / f"kc-{next(_kc_counter)}.yaml"
    p.write_text(yaml.safe_dump(doc, default_flow_style=False) if not isinstance(doc, str) else doc)
    return p


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(mutated(KUBECONFIG))
def test_kubeconfig_shapes(doc):
    """Every generated kubeconfig: usable, or one line naming the file and the key — from the
    bounded reader, from the cluster name lookup, and from the API client (which never indexes a
    wrong shape: the check runs first)."""
    from plumbing.kubeconfig import KubeconfigError, read_kubeconfig
    from provision.cluster import cluster_name_from_kubeconfig
    from suites.kube import Kube, KubeError

    path = _kubeconfig_file(doc)
    try:
        read_kubeconfig(path)
    except KubeconfigError as exc:
        assert_one_line(exc)
        assert str(path) in str(exc)
        with pytest.raises(KubeError) as info:
            Kube(path)
        assert_one_line(info.value)
        return
    assert isinstance(cluster_name_from_kubeconfig(path), str)
    try:
        Kube(path)
    except KubeError as exc:  # e.g. certificate data that is not base64
        assert_one_line(exc)


# ------------------------------------------------------------------ hostile files (every class)


def alias_bomb(levels: int, width: int) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


RECURSIVE_ALIASES = ["a: &a {x: *a}\n", "a: &a [1, *a]\n", "clusters: &c [{name: x, cluster: *c}]\n",
                     "auths: &a {quay.io: {auth: *a}}\n"]


@st.composite
def hostile_text(draw, base: dict) -> bytes:
    """One of the classes of issue 14 as file bytes: an alias bomb, a recursive alias, deep nesting
    (YAML or JSON brackets, block mappings), bytes that are not UTF-8 inside an otherwise valid
    document, numbers out of range, or a mutated (wrong-shape) document."""
    kind = draw(st.sampled_from(["bomb", "recursive", "deep", "deep-block", "not-utf8", "numbers", "mutated"]))
    if kind == "bomb":
        return alias_bomb(draw(st.integers(6, 10)), draw(st.integers(6, 12))).encode()
    if kind == "recursive":
        return draw(st.sampled_from(RECURSIVE_ALIASES)).encode()
    if kind == "deep":
        n = draw(st.sampled_from([65, 200, 1_000, 20_000]))
        open_, close = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return (open_ * n + "1" + close * n).encode()
    if kind == "deep-block":
        return "".join("  " * i + "k:\n" for i in range(draw(st.integers(65, 300)))).encode()
    if kind == "not-utf8":
        good = yaml.safe_dump(base).encode()
        at = draw(st.integers(0, len(good)))
        return good[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xfe\xfe"])) + good[at:]
    if kind == "numbers":
        doc = copy.deepcopy(base)
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        parent[path[-1]] = "@NUMBER@"
        number = draw(st.sampled_from(["1e400", ".inf", "-.inf", ".nan", "9" * 400, "1e400GiB", "99999999999999GiB", "9" * 5000]))
        return yaml.safe_dump(doc).replace("'@NUMBER@'", number).replace("@NUMBER@", number).encode()
    return yaml.safe_dump(draw(mutated(base)), default_flow_style=draw(st.booleans())).encode()


def _session_cases(kubeconfigs: list[Path], results: Path) -> list[dict]:
    cases = [["suites/test_nodes.py", "--platform=kvm", "--kubeconfig", str(k), "--results-dir", str(results),
              "-p", "no:cacheprovider", "-q", "--wait-ready", "1"] for k in kubeconfigs]
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "cases.json").write_text(json.dumps(cases))
        subprocess.run([sys.executable, "-m", "tests.session_driver", str(Path(d) / "cases.json"), str(Path(d) / "out.json")],
                       cwd=ROOT, check=True, timeout=600, capture_output=True)
        return json.loads((Path(d) / "out.json").read_text())


def test_plugin_usage_errors_are_redacted_and_bounded(tmp_path):
    """The plugin's usage errors go through the same redaction and length bound as the CLI's."""
    common = ["suites/test_nodes.py", "--platform=kvm", "--results-dir", str(tmp_path / "r"), "-p", "no:cacheprovider", "-q"]
    cases = [common + ["--label", f"https://hooks.example.com/x?token={CANARY_HOOK}"],
             common + ["--run-id", "x" * 200_000],
             common + ["--label", f"https://user:{CANARY_PULL}@registry.example.com/v2"]]
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "cases.json").write_text(json.dumps(cases))
        subprocess.run([sys.executable, "-m", "tests.session_driver", str(Path(d) / "cases.json"), str(Path(d) / "out.json")],
                       cwd=ROOT, check=True, timeout=600, capture_output=True)
        outcomes = json.loads((Path(d) / "out.json").read_text())
    for outcome in outcomes:
        out = outcome["out"]
        assert outcome["rc"] == 4 and "Traceback" not in out, out[-1000:]
        assert CANARY_HOOK not in out and CANARY_PULL not in out, out
        lines = [ln for ln in out.splitlines() if ln.strip()]
        assert len(lines) <= 2 and all(len(ln) <= 320 for ln in lines), [ln[:100] for ln in lines]


def test_kubeconfig_pytest_sessions(tmp_path):
    """Real `pytest suites/` sessions over hostile kubeconfigs (100 generated, every class): a usage
    error of one line naming the file, exit code 4, never INTERNALERROR or a traceback."""
    from plumbing.kubeconfig import KubeconfigError, read_kubeconfig

    files: list[Path] = []

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    @given(hostile_text(KUBECONFIG))
    def collect(data):
        p = tmp_path / f"kc-{len(files)}.yaml"
        p.write_bytes(data)
        try:
            read_kubeconfig(p)
        except KubeconfigError:
            files.append(p)  # the refused ones: a usable kubeconfig would start a real (slow) session

    collect()
    assert len(files) >= 50
    outcomes = _session_cases(files, tmp_path / "results")
    for path, outcome in zip(files, outcomes):
        out = outcome["out"]
        assert outcome["rc"] == 4, (path, out[-2000:])
        assert "Traceback" not in out and "INTERNALERROR" not in out, out[-2000:]
        assert "CanaryKubeTok5a1f93" not in out, out
        lines = [ln for ln in out.splitlines() if ln.strip()]
        assert len(lines) <= 2 and all(len(ln) <= 400 for ln in lines), lines
        assert str(path) in out


# ------------------------------------------------------------------ every file type through the real CLI
# Each case writes one hostile file (every class above, canary secrets where secrets live), runs
# okdbench.cli.main in-process with the output captured, and checks what a user would see: a
# non-zero exit (unless the generated file happens to be valid), at most a few short lines, no
# traceback, no canary secret — and an answer within a bound (SIGALRM), so a hang fails the case.

CANARY_HOOK = "CanaryHookTok9c2e71"
CANARY_PULL = "CanaryPullPw4d8b02"
CANARY_KUBE = "sha256~CanaryKubeTok5a1f93"
CANARY_SSH = "CanarySshKey7e3c55aaaaaaaaaaaaaaa"
CANARIES = [CANARY_HOOK, CANARY_PULL, CANARY_KUBE, CANARY_SSH,
            base64.b64encode(f"canary:{CANARY_PULL}".encode()).decode()]
CASE_BOUND_S = 30  # generous on a loaded 2-core machine; a hang is minutes
CLI_CASES = 150  # per file type; 7 file types

PULL = {"auths": {"quay.io": {"auth": base64.b64encode(f"canary:{CANARY_PULL}".encode()).decode(), "email": "a@b.c"}}}
RENDER_SPEC = {
    "name": "okd1", "base_domain": "example.test", "platform": "kvm",
    "network": {"machine_cidr": "198.18.0.0/24"},
    "nodes": [{"role": "bootstrap", "count": 1, "vcpu": 4, "memory": "16GiB", "disk": "120GiB"},
              {"role": "master", "count": 3, "vcpu": 4, "memory": "16GiB", "disk": "120GiB"}],
    "ssh_public_key": "id.pub", "pull_secret": "pull-secret.json", "kvm": {"domain_type": "qemu"},
}
NIGHTLY_HOOK = dict(NIGHTLY, notify={"webhook_url": f"https://hooks.example.com/services/{CANARY_HOOK}?token={CANARY_HOOK}"})
ACKS = [{"metric": "build.duration", "platform": "kvm", "date": "2026-01-01", "reason": "new storage"}]


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def run_cli(argv: list[str]) -> tuple[int, str]:
    """okdbench.cli.main in-process: (exit code, stdout + stderr). A case over CASE_BOUND_S is a hang."""
    import contextlib
    import io
    import signal

    from okdbench.cli import main

    buf = io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_BOUND_S)
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse
                rc = int(exc.code or 0)
    except _Hang:
        raise AssertionError(f"hang: {argv} did not answer within {CASE_BOUND_S}s") from None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return rc, buf.getvalue()


def assert_user_sees_one_line(rc: int, out: str, may_succeed: bool) -> None:
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]
    for c in CANARIES:
        assert c not in out, f"canary secret printed: {out[-600:]}"
    if rc == 0:
        assert may_succeed, out[-2000:]
        return
    assert rc == 2, (rc, out[-2000:])
    errors = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith(("INFO ", "DEBUG ", "WARNING "))]
    # One line, or (several mistakes at once) a heading plus at most 20 indented lines and "… and N more".
    assert errors and errors[0].startswith("okdbench ") and len(errors) <= 22, errors
    assert all(ln.startswith("  ") for ln in errors[1:]) and all(len(ln) <= 320 for ln in errors), errors


def _hostile(base: dict, as_json: bool = False):
    """hostile_text, plus the same document as JSON (with its own deep-nesting and number cases)."""
    if not as_json:
        return hostile_text(base)
    return st.one_of(
        hostile_text(base),
        mutated(base).map(lambda d: json.dumps(d, default=str).encode()),
        st.sampled_from([("[" * 20_000 + "]" * 20_000).encode(), b'{"auths": ' + b"9" * 5000 + b"}",
                         b'{"auths": {"q": {"auth": 1e400}}}', json.dumps(PULL).encode()[:-3]]),
    )


_cli_tmp = tempfile.TemporaryDirectory(prefix="okdbench-prop-cli-")
_cli_counter = itertools.count()


def _case_dir() -> Path:
    d = Path(_cli_tmp.name) / f"c{next(_cli_counter)}"
    d.mkdir()
    (d / "id.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEdgeCasesOnly ops@example.com\n")
    (d / "pull-secret.json").write_text(json.dumps(PULL))
    (d / "spec.yaml").write_text(yaml.safe_dump(RENDER_SPEC))
    return d


CLI_SETTINGS = settings(max_examples=CLI_CASES, deadline=None, suppress_health_check=list(HealthCheck),
                        derandomize=True, database=None)


@CLI_SETTINGS
@given(hostile_text(RENDER_SPEC))
def test_cli_render_hostile_spec(data):
    d = _case_dir()
    (d / "spec.yaml").write_bytes(data)
    rc, out = run_cli(["render", "--spec", str(d / "spec.yaml"), "--out", str(d / "out")])
    assert_user_sees_one_line(rc, out, may_succeed=True)


@CLI_SETTINGS
@given(_hostile(PULL, as_json=True))
def test_cli_render_hostile_pull_secret(data):
    d = _case_dir()
    (d / "pull-secret.json").write_bytes(data)
    rc, out = run_cli(["render", "--spec", str(d / "spec.yaml"), "--out", str(d / "out")])
    assert_user_sees_one_line(rc, out, may_succeed=True)


@CLI_SETTINGS
@given(st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"ssh-ed25519 AAAA\xff\xfe key", b"-----BEGIN OPENSSH PRIVATE KEY-----\n" + CANARY_SSH.encode() + b"\n-----END OPENSSH PRIVATE KEY-----\n",
                     b"ssh-ed25519 " + b"A" * (70 * 2**10), b"\xef\xbb\xbfssh-ed25519 AAAAC3Nz ok"]),
    hostile_text({"key": "ssh-ed25519 AAAA"}),
))
def test_cli_render_hostile_ssh_key(data):
    d = _case_dir()
    (d / "id.pub").write_bytes(data)
    rc, out = run_cli(["render", "--spec", str(d / "spec.yaml"), "--out", str(d / "out")])
    assert_user_sees_one_line(rc, out, may_succeed=True)


@CLI_SETTINGS
@given(hostile_text(NIGHTLY_HOOK))
def test_cli_nightly_hostile_config(data):
    from plumbing.redact import forget_secrets

    d = _case_dir()
    (d / "nightly.yaml").write_bytes(data.replace(b"https://hooks", b"htps://hooks") if data.endswith(b"\n") and b"https://hooks" in data and len(data) % 3 == 0 else data)
    rc, out = run_cli(["nightly", "--config", str(d / "nightly.yaml"), "--dry-run"])
    forget_secrets()
    assert_user_sees_one_line(rc, out, may_succeed=True)


def _results_dir() -> Path:
    root = Path(_cli_tmp.name) / "results"
    if not root.exists():
        for i, platform in enumerate(["vsphere", "kvm"]):
            run = root / f"r{i}"
            run.mkdir(parents=True)
            (run / "run.json").write_text(json.dumps(dict(RUN_JSON, run_id=f"r{i}", platform=platform)))
            (run / "samples.jsonl").write_text(json.dumps(dict(SAMPLE_LINE, run_id=f"r{i}", platform=platform)) + "\n")
    return root


RUN_JSON = {"run_id": "r1", "platform": "kvm", "cluster": "c", "started": "2026-01-01T01:00:00Z", "status": "complete"}
SAMPLE_LINE = {"run_id": "r1", "platform": "kvm", "cluster": "c", "suite": "builds", "metric": "build.duration",
               "value": 12.5, "unit": "s", "better": "lower", "repetition": 0, "timestamp": "2026-01-01T01:02:03Z", "labels": "{}"}


@CLI_SETTINGS
@given(hostile_text(COSTS))
def test_cli_report_hostile_costs(data):
    d = _case_dir()
    (d / "costs.yaml").write_bytes(data)
    rc, out = run_cli(["report", str(_results_dir()), "--costs", str(d / "costs.yaml"), "--format", "json",
                       "--out", str(d / "r.json")])
    assert_user_sees_one_line(rc, out, may_succeed=True)


@CLI_SETTINGS
@given(st.one_of(hostile_text({"acks": ACKS}).map(lambda b: b), st.lists(mutated(ACKS[0]), max_size=3).map(lambda a: yaml.safe_dump(a).encode())))
def test_cli_report_hostile_acks(data):
    d = _case_dir()
    (d / "acks.yaml").write_bytes(data)
    rc, out = run_cli(["report", str(_results_dir()), "--ack", str(d / "acks.yaml"), "--format", "json",
                       "--out", str(d / "r.json")])
    assert_user_sees_one_line(rc, out, may_succeed=True)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(run_json=_hostile(RUN_JSON, as_json=True), line=_hostile(SAMPLE_LINE, as_json=True))
def test_cli_report_hostile_run_folder(run_json, line):
    """A damaged run folder beside good ones: the report is written (exit 0), the damage is in
    its warnings, and the good runs' samples are in it."""
    d = _case_dir()
    for platform in ("vsphere", "kvm"):
        good = d / "res" / f"good-{platform}"
        good.mkdir(parents=True)
        (good / "run.json").write_text(json.dumps(dict(RUN_JSON, run_id=f"good-{platform}", platform=platform)))
        (good / "samples.jsonl").write_text(json.dumps(dict(SAMPLE_LINE, platform=platform)) + "\n")
    bad = d / "res" / "bad"
    bad.mkdir()
    (bad / "run.json").write_bytes(run_json)
    (bad / "samples.jsonl").write_bytes(json.dumps(SAMPLE_LINE).encode() + b"\n" + line.replace(b"\n", b" ") + b"\n")
    rc, out = run_cli(["report", str(d / "res"), "--baseline", "vsphere", "--candidate", "kvm", "--format", "json",
                       "--out", str(d / "r.json")])
    assert rc == 0 and "Traceback" not in out, out[-3000:]
    report = (d / "r.json").read_text()
    assert "build.duration" in report


SEMANTIC = {
    "public-nat": (lambda d: d["network"].update(machine_cidr="8.8.8.0/24"), "network.machine_cidr"),
    "multicast-mac": (lambda d: d["nodes"][1].update(mac_prefix="01:00:5e"), "nodes[1].mac_prefix"),
    "custom-cpu": (lambda d: d["kvm"].update(tuning={"cpu_mode": "custom"}), "kvm.tuning.cpu_model"),
    "ip-outside": (lambda d: d["nodes"][1].update(ips=["198.18.7.10"]), "nodes[1].ips[0]"),
    "ip-is-host": (lambda d: d["nodes"][0].update(ips=["198.18.0.1"]), "nodes[0].ips[0]"),
    "bad-vcpu": (lambda d: d["nodes"][0].update(vcpu=0), "nodes[0].vcpu"),
    "bad-memory": (lambda d: d["nodes"][1].update(memory="99999999999999GiB"), "nodes[1].memory"),
}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(st.sets(st.sampled_from(sorted(SEMANTIC)), min_size=1, max_size=3))
def test_cli_render_reports_every_spec_mistake(mistakes):
    """Specs that each field would accept but libvirt, vCenter or OKD would refuse later (public
    network behind NAT, multicast MAC prefix, custom CPU without a model, node address outside the
    network or on the host), mixed with field errors: `render` names every mistake's field at once.
    Field errors come first (pydantic), the later checks need valid fields: a mix names the field
    errors only."""
    d = _case_dir()
    spec = copy.deepcopy(RENDER_SPEC)
    for name in mistakes:
        SEMANTIC[name][0](spec)
    (d / "spec.yaml").write_text(yaml.safe_dump(spec))
    rc, out = run_cli(["render", "--spec", str(d / "spec.yaml"), "--out", str(d / "out")])
    assert_user_sees_one_line(rc, out, may_succeed=False)
    field_errors = {m for m in mistakes if m.startswith("bad-")}
    for name in field_errors or mistakes:
        assert SEMANTIC[name][1] + ":" in out, (name, out)
    assert not (d / "out").exists() or not any((d / "out").iterdir())


@CLI_SETTINGS
@given(st.one_of(hostile_text({"username": "admin", "password": CANARY_PULL}), st.binary(max_size=200)))
def test_vsphere_credentials_file_hostile(data):
    """The vCenter credentials file: read within the bounds (YAML, else INI lines); a bad one is one
    line naming the field, and its password never shows."""
    from plumbing.errors import UserError
    from provision.vsphere.connect import _read_credentials_file

    d = _case_dir()
    (d / "creds").write_bytes(data)
    try:
        creds = _read_credentials_file(d / "creds")
    except UserError as exc:
        assert_one_line(exc)
        assert "vsphere.credentials.file" in str(exc) and CANARY_PULL not in str(exc)
        return
    assert isinstance(creds, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in creds.items())
