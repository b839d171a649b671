"""install-config.yaml for an OKD user-provisioned install (platform: none), from the cluster spec.

The pull secret is read at render time and goes into the output file only: it is registered with
plumbing.redact first, so it is masked wherever else it might surface (logs, exceptions, results).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from plumbing import redact
from plumbing.safe_load import parse_json, read_text
from provision.spec import ClusterSpec, SpecError
from provision.templating import render

log = logging.getLogger(__name__)

# OKD needs no Red Hat pull secret; its docs give this placeholder for clusters without one.
OKD_FAKE_PULL_SECRET = '{"auths":{"fake":{"auth":"aWQ6cGFzcwo="}}}'


def read_pull_secret(spec: ClusterSpec) -> str:
    if spec.pull_secret is None:
        log.info("no pull secret in the spec; using OKD's placeholder (public images only)")
        return OKD_FAKE_PULL_SECRET
    path = Path(spec.pull_secret)
    # Bounded (size, UTF-8, JSON depth): a pull secret from anywhere ends in one line, never a traceback.
    text = read_text(path, "pull_secret", "your pull secret JSON file", SpecError)
    redact.register_text_secrets(text)
    try:
        data = parse_json(text, f"pull_secret: {path}", SpecError)
    except SpecError:
        raise SpecError(f"pull_secret: {path} is not JSON; it must look like {{\"auths\": {{...}}}}") from None
    if not isinstance(data, dict) or not isinstance(data.get("auths"), dict):
        raise SpecError(f"pull_secret: {path} has no 'auths' object; it must look like {{\"auths\": {{...}}}}")
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def read_ssh_key(spec: ClusterSpec) -> str | None:
    if spec.ssh_public_key is None:
        return None
    path = Path(spec.ssh_public_key)
    text = read_text(path, "ssh_public_key", "a public key (e.g. ~/.ssh/id_ed25519.pub)", SpecError, max_bytes=64 * 2**10).strip()
    if "PRIVATE KEY" in text:
        raise SpecError(f"ssh_public_key: {path} is a private key; point it at the .pub file")
    if not text.startswith(("ssh-", "ecdsa-", "sk-")):
        raise SpecError(f"ssh_public_key: {path} is not an OpenSSH public key (expected 'ssh-ed25519 AAAA...')")
    return text


def render_install_config(spec: ClusterSpec) -> str:
    masters = spec.count("master")
    if masters not in (1, 3):
        raise SpecError(f"nodes: master count {masters} is not supported by OKD; use 1 or 3")
    return render(
        "install-config.yaml.j2",
        spec=spec,
        source=spec.source.name if spec.source else "a cluster spec",
        masters=masters,
        workers=spec.count("worker"),
        pull_secret=read_pull_secret(spec),
        ssh_key=read_ssh_key(spec),
    )
