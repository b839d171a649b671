"""Evidence for a failed criterion: `oc adm inspect` of the failing objects (or a full
`oc adm must-gather`) into the run folder, through openshift-client, when `oc` is on PATH.

What `oc` writes is redacted in place (tokens, keys, registered secrets): the run folder is
shared with people who must not get cluster credentials.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path

from plumbing import redact

log = logging.getLogger("okdbench.mustgather")

MODES = ("inspect", "full", "off")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "criterion"


def redact_tree(root: Path) -> int:
    """Mask secrets in every text file under root; returns how many files changed."""
    changed = 0
    for path in root.rglob("*"):
        if not path.is_file() or path.stat().st_size > 50 * 2**20:
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        clean = redact.redact_text(text)
        if clean != text:
            path.write_text(clean)
            changed += 1
    return changed


def collect(kubeconfig: Path, run_dir: Path, criterion: str, objects: list[str], *, mode: str = "inspect",
            insecure: bool = False, timeout_s: float = 600.0) -> str | None:
    """Gather into <run_dir>/must-gather/<criterion>/; returns that path, or None when not possible.

    objects: `oc` resource references such as "clusteroperator/etcd" or "ns/okdbench-x".
    Never raises: evidence collection must not change the criterion's own verdict.
    """
    oc_path = shutil.which("oc")
    if mode == "off" or oc_path is None:
        return None
    import openshift_client as oc

    dest = run_dir / "must-gather" / _safe(criterion)
    dest.mkdir(parents=True, exist_ok=True)
    redact.register_file_secrets(kubeconfig)
    if mode == "full" or not objects:
        args = ["must-gather", f"--dest-dir={dest}"]
    else:
        args = ["inspect", *objects, f"--dest-dir={dest}"]
    start = time.monotonic()
    log.info("criterion %s failed: collecting oc adm %s into %s", criterion, args[0], dest)
    try:
        with oc.client_path(oc_path), oc.api_server(kubeconfig_path=str(kubeconfig)), oc.tls_verify(not insecure), \
                oc.timeout(timeout_s):
            result = oc.invoke("adm", args, auto_raise=False)
        ok = result.status() == 0
        (dest / "oc-result.txt").write_text(redact.redact_text(
            f"command: oc adm {' '.join(args)}\nstatus: {result.status()}\n\n{result.err()}"))
    except Exception as exc:  # openshift-client raises its own exception types; report, never mask the verdict
        log.warning("oc adm %s failed: %s", args[0], redact.redact_text(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__)
        ok = False
    redact_tree(dest)
    log.info("oc adm %s %s in %.1fs", args[0], "done" if ok else "FAILED", time.monotonic() - start)
    return str(dest) if ok else f"{dest} (incomplete: oc adm {args[0]} failed, see oc-result.txt)"
