"""redact: known secret values and secret-shaped text never leave the process unmasked."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from plumbing import redact
from plumbing.redact import MASK, redact_argv, redact_text

PASSWORD = "CanaryVcPass-7f3a9"
TOKEN = "sha256~CanaryKubeToken0123456789abcdef"
SSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAACanarySshKeyLine1AAAAAAAAAAAAAAAAAAAAAAA\n"
    "CanarySshKeyLine2BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
PULL_AUTH = base64.b64encode(b"canaryuser:CanaryPullPassword99").decode()
PULL_SECRET = json.dumps({"auths": {"quay.io": {"auth": PULL_AUTH, "email": "x@example.com"}}})


@pytest.fixture(autouse=True)
def clean_registry():
    redact.forget_secrets()
    yield
    redact.forget_secrets()


def test_registered_value_is_masked_in_every_encoding():
    redact.register_secret(PASSWORD)
    text = f"login {PASSWORD} b64 {base64.b64encode(PASSWORD.encode()).decode()} json {json.dumps(PASSWORD)}"
    out = redact_text(text)
    assert PASSWORD not in out and base64.b64encode(PASSWORD.encode()).decode() not in out
    assert out.count(MASK) == 3


def test_short_values_are_not_registered():
    redact.register_secret("abc")
    assert redact_text("abc abcdef") == "abc abcdef"


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["okdbench", "run", "--vsphere-password", PASSWORD], ["okdbench", "run", "--vsphere-password", MASK]),
        (["x", f"--token={TOKEN}"], ["x", f"--token={MASK}"]),
        (["x", f"VSPHERE_PASSWORD={PASSWORD}"], ["x", f"VSPHERE_PASSWORD={MASK}"]),
        (["x", "--spec", "specs/kvm.yaml", "--kubeconfig", "/k/config"], ["x", "--spec", "specs/kvm.yaml", "--kubeconfig", "/k/config"]),
        (["x", "--pull-secret", "/etc/ps.json"], ["x", "--pull-secret", "/etc/ps.json"]),
        (["x", "https://admin:hunter2hunter@vc.example.com/sdk"], ["x", f"https://admin:{MASK}@vc.example.com/sdk"]),
    ],
)
def test_redact_argv(argv, expected):
    assert redact_argv(argv) == expected


def test_registered_secret_in_any_argument():
    redact.register_secret(PASSWORD)
    assert PASSWORD not in " ".join(redact_argv(["x", f"--note=pw is {PASSWORD}"]))


def test_patterns_without_registration():
    text = (
        f"Authorization: Bearer {TOKEN}\n"
        f"    token: {TOKEN}\n"
        f"client-key-data: TFMwdExTMUNSVWRKVGlCU1UwRWdVRkpKVmtGVVJTQkxSVmt0TFMwdExRbz0=\n"
        f"{SSH_KEY}"
        f'{{"auths":{{"quay.io":{{"auth":"{PULL_AUTH}"}}}}}}\n'
        f"password={PASSWORD}\n"
        "authentication: Available\n"
    )
    out = redact_text(text)
    for secret in (TOKEN, "CanarySshKeyLine1", PULL_AUTH, PASSWORD, "TFMwdExTMUNS"):
        assert secret not in out
    assert "authentication: Available" in out  # operator names are not secrets


def test_file_discovery_registers_kubeconfig_pull_secret_and_key(tmp_path):
    kc = tmp_path / "kubeconfig"
    kc.write_text(f"apiVersion: v1\nusers:\n- name: u\n  user:\n    token: {TOKEN}\n")
    ps = tmp_path / "pull-secret.json"
    ps.write_text(PULL_SECRET)
    key = tmp_path / "id_ed25519"
    key.write_text(SSH_KEY)
    for p in (kc, ps, key):
        redact.register_file_secrets(p)
    # Each secret now masked even in shapes no pattern knows.
    line2 = SSH_KEY.splitlines()[2]
    out = redact_text(f"{TOKEN}|CanaryPullPassword99|{line2}")
    assert "CanaryKubeToken" not in out and "CanaryPullPassword99" not in out and "CanarySshKeyLine2" not in out


def test_env_discovery():
    redact.register_env_secrets({"VSPHERE_PASSWORD": PASSWORD, "PASSWORD_FILE": "/etc/pw-file-path", "HOME": "/root"})
    assert redact_text(f"{PASSWORD} /etc/pw-file-path /root") == f"{MASK} /etc/pw-file-path /root"


def test_log_filter_masks_every_logger_and_handler(caplog):
    redact.install_log_filter()
    redact.register_secret(PASSWORD)
    with caplog.at_level(logging.INFO):
        logging.getLogger("okdbench.deep.child").info("connecting with %s", PASSWORD)
        try:
            raise RuntimeError(f"login failed for password {PASSWORD}")
        except RuntimeError:
            logging.getLogger("pyVmomi").exception("boom")
    assert PASSWORD not in caplog.text
    assert all(PASSWORD not in (r.exc_text or "") for r in caplog.records)
    assert MASK in caplog.text
