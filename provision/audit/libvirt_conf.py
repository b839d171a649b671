"""Read libvirt's daemon config files (qemu.conf, libvirtd.conf, virtproxyd.conf): the keys the security rules need.

The format is libvirt's virconf: `key = value` with value a "string", an integer or a [list],
'#' comments. Only the keys in WANTED are kept; of the passwords (vnc_password, spice_password) only
whether they are set, so their value never leaves this module.
"""

from __future__ import annotations

import re
from pathlib import Path

from plumbing.errors import UserError

MAX_BYTES = 1 << 20  # the shipped qemu.conf is ~40 KiB; anything near 1 MiB is not a config file
WANTED = frozenset({
    # qemu.conf
    "security_driver", "user", "group", "vnc_listen", "vnc_tls", "vnc_tls_x509_verify", "vnc_auto_unix_socket",
    "spice_listen", "spice_tls", "dynamic_ownership",
    # libvirtd.conf / virtproxyd.conf
    "listen_tcp", "listen_tls", "auth_tcp", "auth_tls", "listen_addr", "tls_no_verify_certificate",
})
# Whether these are set matters, never their value: it is replaced before anything else sees it.
SECRET_KEYS = frozenset({"vnc_password", "spice_password"})
SET = "<set>"
_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class ConfigFileError(UserError):
    """A config file that cannot be read as one: one line naming the file and the key."""


def _value(raw: str) -> str:
    raw = raw.split("#", 1)[0].strip() if not raw.startswith('"') else raw
    if raw.startswith('"'):
        end = raw.find('"', 1)
        return raw[1:end] if end > 0 else raw[1:]
    if raw.startswith("["):  # a list: keep its strings, comma-joined (security_driver may be one)
        return ",".join(re.findall(r'"([^"]*)"', raw))
    return raw


def parse(text: str, source: str = "config") -> dict[str, str]:
    """The WANTED keys set in text (the last assignment wins, as in libvirt). Lists may span lines."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        key, raw = m.group(1), m.group(2)
        if raw.startswith("[") and "]" not in raw:
            while i < len(lines) and "]" not in raw:
                raw += " " + lines[i].split("#", 1)[0]
                i += 1
        if key in WANTED:
            out[key] = _value(raw)
        elif key in SECRET_KEYS:
            out[key] = SET if _value(raw) else ""
    return out


def read(path: Path) -> dict[str, str] | None:
    """The file's WANTED keys; None when it does not exist (the daemon then uses its defaults)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read ({exc.strerror}); run the audit as a user who can, "
                              "or point kvm.host_config at a copy") from None
    if len(data) > MAX_BYTES:
        raise ConfigFileError(f"{path}: larger than {MAX_BYTES} bytes; not a libvirt config file (check kvm.host_config)")
    return parse(data.decode("utf-8", errors="replace"), str(path))


def flag(conf: dict[str, str] | None, key: str, default: bool) -> bool:
    """A 0/1 setting; a value that is not an integer counts as the default (libvirt refuses to start on it)."""
    value = (conf or {}).get(key)
    try:
        return bool(int(value)) if value is not None else default
    except ValueError:
        return default
