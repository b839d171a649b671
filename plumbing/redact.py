"""The one place that knows what a secret looks like, and removes it from argv, text and logs.

Two kinds of knowledge:
- values: secrets okdbench has read (vCenter password, pull secret, kubeconfig tokens and
  client keys, SSH private keys). Registered once, replaced wherever they appear, so a secret
  that leaks through an unexpected path (an exception message, a subprocess's output) is still
  caught.
- patterns: shapes that are secret whatever their value (PEM private keys, bearer tokens,
  `password=...`, `--password X`, kubeconfig `token:` / `client-key-data:` lines, pull-secret
  `"auth": "..."` entries), so secrets okdbench never read are caught too.

Everything that leaves the process (run.json command_line, logs, reports, must-gather copies)
goes through `redact_text` / `redact_argv` or the logging filter installed by `install_log_filter`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterable


MASK = "***REDACTED***"

# Values shorter than this are not registered: replacing "a" or "1234" everywhere would
# mangle the text without protecting anything (a 4-character password is not a secret).
MIN_SECRET_LEN = 6

_lock = threading.Lock()
_values: set[str] = set()

# argv flags whose *next* argument (or `=value`) is secret.
_SECRET_FLAG_RE = re.compile(r"^--?[A-Za-z0-9_.-]*(password|passwd|secret|token|pull-secret-data|api-key|apikey|auth)$", re.I)
# NAME=value pairs (env assignments, `password=...` in URLs/ini text) whose value is secret.
# The name must *end* in the secret word: `authentication: Available` is not a secret.
_SECRET_NAME = r"[A-Za-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key)"
_ASSIGN_RE = re.compile(rf"(?i)(\b{_SECRET_NAME}[\"']?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&\"'}}]+)")
_PEM_RE = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----.*?(?:-----END \1-----|\Z)", re.S
)
_BEARER_RE = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+")
# kubeconfig secret fields, YAML or JSON form.
_KUBE_FIELD_RE = re.compile(
    r"(?i)((?<![A-Za-z0-9_-])[\"']?(?:token|client-key-data|password|auth|id-token|refresh-token|identitytoken)[\"']?\s*:\s*)"
    r"(\"[^\"]*\"|'[^']*'|[^\s,;}]+)"
)
# userinfo in URLs: https://user:pass@host
_URL_CRED_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)")
# query strings of URLs (any scheme, typos included): ?token=..., ?sig=..., ?X-Amz-Signature=...
_URL_QUERY_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s?#\"'<>]*\?)([^\s#\"'<>]+)")


def register_secret(value: Any) -> None:
    """Remember a secret value (and its common encodings) so it is redacted everywhere."""
    if value is None:
        return
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            return
    text = str(value).strip()
    if len(text) < MIN_SECRET_LEN:
        return
    forms = {text}
    # A secret also travels base64-encoded (kubeconfig *-data, pull-secret auths) and JSON-escaped.
    forms.add(base64.b64encode(text.encode("utf-8", "surrogatepass")).decode())
    forms.add(json.dumps(text)[1:-1])
    for line in text.splitlines():
        # Multi-line secrets (keys) leak line by line in logs too.
        if len(line.strip()) >= 16 and not line.startswith("-----"):
            forms.add(line.strip())
    with _lock:
        _values.update(f for f in forms if len(f) >= MIN_SECRET_LEN)


def forget_secrets() -> None:
    """Drop registered values (tests; a long-lived process between unrelated runs)."""
    with _lock:
        _values.clear()


def registered_count() -> int:
    with _lock:
        return len(_values)


def redact_text(text: Any) -> str:
    """Return `text` with every known secret value and every secret-shaped pattern masked."""
    if text is None:
        return ""
    s = text if isinstance(text, str) else str(text)
    with _lock:
        values = sorted(_values, key=len, reverse=True)
    for v in values:
        if v in s:
            s = s.replace(v, MASK)
    s = _PEM_RE.sub(MASK, s)
    s = _BEARER_RE.sub(lambda m: m.group(1) + MASK, s)
    s = _URL_CRED_RE.sub(lambda m: m.group(1) + MASK + m.group(3), s)
    s = _URL_QUERY_RE.sub(lambda m: m.group(1) + MASK, s)
    s = _KUBE_FIELD_RE.sub(lambda m: m.group(1) + _keep_quotes(m.group(2)), s)
    s = _ASSIGN_RE.sub(lambda m: m.group(1) + _keep_quotes(m.group(2)), s)
    return s


# An error line is read in a terminal or a log: long enough for a path, a field and the fix,
# short enough that a 200,000-character value is not echoed whole.
MAX_ERROR_LINE = 300


def error_line(message: Any, limit: int = MAX_ERROR_LINE) -> str:
    """What okdbench prints for an error: one line, secrets masked, at most `limit` characters."""
    line = " ".join(redact_text(message).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's first line for a note (secrets masked), or its type when it says nothing."""
    lines = redact_text(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


def _keep_quotes(value: str) -> str:
    if value == MASK or MASK in value:
        return value
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[0] + MASK + value[0]
    return MASK


def redact_argv(argv: Iterable[Any]) -> list[str]:
    """A command line safe to record: values of secret flags and known secrets masked.

    `--vsphere-password X`, `--token=X`, `VSPHERE_PASSWORD=X` and any registered secret value
    are masked; file paths (--spec, --kubeconfig, --pull-secret FILE) are kept: they are not secrets.
    """
    out: list[str] = []
    mask_next = False
    for raw in argv:
        arg = str(raw)
        if mask_next:
            out.append(MASK)
            mask_next = False
            continue
        if arg.startswith("-") and "=" in arg:
            flag, _, value = arg.partition("=")
            if _SECRET_FLAG_RE.match(flag) and not _is_path_flag(flag):
                out.append(f"{flag}={MASK}")
                continue
        elif _SECRET_FLAG_RE.match(arg) and not _is_path_flag(arg):
            mask_next = True
            out.append(arg)
            continue
        out.append(redact_text(arg))
    return out


def _is_path_flag(flag: str) -> bool:
    # `--pull-secret FILE`, `--token-file FILE` name files, whose path is useful and harmless.
    return flag.lower().endswith(("-file", "-path", "pull-secret"))


# ------------------------------------------------------------------ discovery of secret values


def register_file_secrets(path: str | Path | None) -> None:
    """Register the secret content of a file: pull secret, kubeconfig, SSH private key, credentials."""
    if not path:
        return
    from plumbing.safe_load import MAX_DOC_BYTES

    p = Path(path).expanduser()
    try:
        with open(p, "rb") as fh:
            data = fh.read(MAX_DOC_BYTES + 1)
    except OSError:
        return
    if len(data) > MAX_DOC_BYTES:
        return  # the reader refuses the file anyway: its content never gets used or echoed
    register_text_secrets(data.decode("utf-8", "replace"))


def register_text_secrets(text: str) -> None:
    """Find and register the secret values inside a document okdbench reads."""
    for m in _PEM_RE.finditer(text):
        register_secret(m.group(0))
    from plumbing.safe_load import InputError, parse_yaml

    try:
        # Bounded: an alias bomb would make the walk below exponential (and never finish).
        data = parse_yaml(text, "secrets")
    except InputError:
        data = None
    if isinstance(data, dict):
        _register_doc(data)


_SECRET_KEYS = {
    "token", "id-token", "refresh-token", "client-key-data", "password", "auth", "auths",
    "client-secret", "secret", "access-token", "identitytoken",
}


def _register_doc(node: Any, key: str = "") -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            k = str(k)
            if k.lower() == "auths" and isinstance(v, dict):
                # pull secret: every registry's auth / password / identitytoken
                for entry in v.values():
                    _register_doc(entry, "auths")
                register_secret(json.dumps({"auths": v}))
                continue
            _register_doc(v, k)
    elif isinstance(node, list):
        for item in node:
            _register_doc(item, key)
    elif isinstance(node, str) and key.lower() in _SECRET_KEYS:
        register_secret(node)
        if key.lower() == "auth":
            # registry auth is base64("user:password"); register the password alone too
            try:
                decoded = base64.b64decode(node, validate=True).decode()
                register_secret(decoded)
                register_secret(decoded.partition(":")[2])
            except (ValueError, UnicodeDecodeError):
                pass
        if key.lower() == "client-key-data":
            try:
                register_secret(base64.b64decode(node).decode())
            except (ValueError, UnicodeDecodeError):
                pass


_ENV_SECRET_RE = re.compile(r"(?i)(password|passwd|secret|token|api_?key)")


def register_env_secrets(environ: dict[str, str] | None = None) -> None:
    """Environment variables named like secrets (VSPHERE_PASSWORD, *_TOKEN) hold secrets."""
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if _ENV_SECRET_RE.search(name) and not name.upper().endswith(("_FILE", "_PATH", "_ENV")):
            register_secret(value)


def register_spec_secrets(spec: Any) -> None:
    """Register what a ClusterSpec points at: pull secret, SSH private key, vCenter credentials."""
    if spec is None:
        return
    register_file_secrets(getattr(spec, "pull_secret", None))
    ssh_pub = getattr(spec, "ssh_public_key", None)
    if ssh_pub:
        # The private half next to the public key is a secret if it ever shows up.
        pub = Path(ssh_pub)
        if pub.suffix == ".pub":
            register_file_secrets(pub.with_suffix(""))
    vs = getattr(spec, "vsphere", None)
    creds = getattr(vs, "credentials", None) if vs else None
    if creds is not None:
        if getattr(creds, "password_env", None):
            register_secret(os.environ.get(creds.password_env))
        if getattr(creds, "file", None):
            register_file_secrets(creds.file)


# ------------------------------------------------------------------ logging


class RedactingFilter(logging.Filter):
    """Masks secrets in every record it sees: message, args and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    if getattr(record, "_okdbench_redacted", False):
        return record
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not hide the log line
        message = f"{record.msg} {record.args}"
    record.msg = redact_text(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text)
    record._okdbench_redacted = True
    return record


_installed = False
_filter = RedactingFilter()


def install_log_filter() -> None:
    """Redact every log record from now on, whichever logger or handler it goes through.

    A filter on the root logger does not see records propagated from child loggers, and
    handlers added later (pytest's log capture, a log file) would miss a handler filter, so the
    redaction happens where every record is born: the log record factory.
    """
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_filter)
