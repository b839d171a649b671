"""Connecting to vCenter: credentials from the environment or a file, TLS verified by default.

Every way a connection fails becomes one UserError line naming the spec field to fix. The
password is registered with plumbing.redact before it is used, so even an unexpected path
(an exception text, a SOAP fault) cannot carry it into logs or results.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from plumbing import redact
from plumbing.errors import UserError
from plumbing.safe_load import parse_yaml, read_text
from provision.spec import ClusterSpec

log = logging.getLogger("okdbench.vsphere")

# Socket timeout per SOAP call: long-running work is a Task we poll, never one blocking call.
SOCKET_TIMEOUT_S = 60

# What pyVmomi (http.client over ssl) raises when vCenter goes away mid-session: RemoteDisconnected,
# ConnectionResetError/RefusedError, socket timeouts, ssl.SSLError/SSLEOFError are all OSError or
# HTTPException. SOAP faults (vmodl.MethodFault) are neither and pass through untouched.
CONNECTION_ERRORS = (OSError, http.client.HTTPException)


class ConnectionLost(UserError):
    """The session's connection to vCenter broke (vCenter restarting, network gone) during a call."""


def endpoint_of(mo: object) -> str:
    """host:port of the vCenter a managed object (or ServiceInstance) was fetched from."""
    return getattr(getattr(mo, "_stub", None), "host", None) or "vCenter"


@contextlib.contextmanager
def connection_guard(mo: object, doing: str) -> Iterator[None]:
    """One line naming vCenter and what was being done, instead of a socket traceback.

    Not retried: a vCenter restart takes minutes and cancels running tasks, so the caller's
    rollback (if it can reach vCenter) or a later destroy is what cleans up.
    """
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise ConnectionLost(
            f"vcenter {endpoint_of(mo)}: connection lost while {doing} ({type(exc).__name__}); once vCenter is back, "
            "run `okdbench destroy --spec <spec>` to clean up if anything remains") from None


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never show the password, even in a debugger or traceback
        return f"Credentials(username={self.username!r}, password=***)"


def _read_credentials_file(path: Path) -> dict[str, str]:
    text = read_text(path.expanduser(), "vsphere.credentials.file", "a file with username and password entries", UserError)
    data: object
    try:
        data = parse_yaml(text, f"vsphere.credentials.file {path}", UserError)
    except UserError:
        data = None  # not YAML: read as INI below
    if not isinstance(data, dict):
        # INI-ish "username = x" lines (with or without a [section] header).
        data = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith(("#", ";", "[")):
                data[key.strip().lower()] = value.strip()
    return {str(k).lower(): str(v) for k, v in data.items() if v is not None}


def load_credentials(spec: ClusterSpec) -> Credentials:
    """username/password from vsphere.credentials: a file wins over environment variables."""
    vs = spec.vsphere
    assert vs is not None
    creds = vs.credentials
    if creds.file is not None:
        path = creds.file if creds.file.is_absolute() or spec.source is None else spec.source.parent / creds.file
        data = _read_credentials_file(path)
        username, password = data.get("username") or data.get("user"), data.get("password")
        if not username or not password:
            raise UserError(f"vsphere.credentials.file: {path} needs both 'username' and 'password' entries")
        if path.stat().st_mode & 0o077:
            log.warning("vsphere.credentials.file %s is readable by group/others; chmod 600 it", path)
    else:
        username = os.environ.get(creds.username_env or "") if creds.username_env else None
        password = os.environ.get(creds.password_env or "") if creds.password_env else None
        if not username:
            raise UserError(f"vsphere.credentials.username_env: environment variable {creds.username_env} is not set; "
                            "export it or use vsphere.credentials.file")
        if not password:
            raise UserError(f"vsphere.credentials.password_env: environment variable {creds.password_env} is not set; "
                            "export it or use vsphere.credentials.file")
    redact.register_secret(password)
    redact.install_log_filter()
    return Credentials(username=username, password=password)


def ssl_context(spec: ClusterSpec, insecure: bool = False) -> ssl.SSLContext:
    vs = spec.vsphere
    assert vs is not None
    if insecure or vs.insecure:
        log.warning("!!! TLS verification of vCenter %s is OFF (--insecure): anyone on the path can read the "
                    "vCenter password. Use vsphere.ca_bundle instead. !!!", vs.host)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if vs.ca_bundle is None:
        return ssl.create_default_context()
    bundle = vs.ca_bundle
    if not bundle.is_absolute() and spec.source is not None:
        bundle = spec.source.parent / bundle
    try:
        return ssl.create_default_context(cafile=str(bundle))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
        raise UserError(f"vsphere.ca_bundle: cannot load {bundle} ({reason}); give a PEM file with the vCenter CA") from None


def _endpoint(spec: ClusterSpec) -> str:
    vs = spec.vsphere
    assert vs is not None
    return f"{vs.host}:{vs.port}"


def connect(spec: ClusterSpec, *, insecure: bool = False) -> vim.ServiceInstance:
    """Log in to vCenter; every failure is one line naming the field to fix."""
    vs = spec.vsphere
    assert vs is not None
    creds = load_credentials(spec)
    ctx = ssl_context(spec, insecure)
    where = _endpoint(spec)
    try:
        return SmartConnect(host=vs.host, port=vs.port, user=creds.username, pwd=creds.password, sslContext=ctx,
                            httpConnectionTimeout=SOCKET_TIMEOUT_S)
    except ssl.SSLCertVerificationError as exc:
        fix = "set vsphere.ca_bundle to the CA that signed it" if vs.ca_bundle is None else \
            f"vsphere.ca_bundle {vs.ca_bundle} does not contain the CA that signed it"
        raise UserError(f"vsphere.host: TLS certificate of vCenter {where} is not trusted "
                        f"({exc.verify_message}); {fix} (--insecure skips the check, unsafe)") from None
    except ssl.SSLError as exc:
        raise UserError(f"vsphere.host: TLS handshake with vCenter {where} failed ({exc.reason}); "
                        "check vsphere.host/port point at vCenter's HTTPS port") from None
    except vim.fault.InvalidLogin:
        source = f"the file {vs.credentials.file}" if vs.credentials.file else \
            f"${vs.credentials.username_env}/${vs.credentials.password_env}"
        raise UserError(f"vsphere.credentials: vCenter {where} rejected the login (wrong username or password); "
                        f"fix {source}") from None
    except vim.fault.NoPermission as exc:
        raise UserError(f"vsphere.credentials: the vCenter user lacks privilege {exc.privilegeId} on {where}; "
                        "grant it or use another account") from None
    except socket.gaierror:
        raise UserError(f"vsphere.host: cannot resolve {vs.host}; check the name or use an IP address") from None
    except (ConnectionError, socket.timeout, TimeoutError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise UserError(f"vsphere.host: vCenter {where} is unreachable ({reason}); check vsphere.host/port and "
                        "that vCenter is up") from None
    except vim.fault.VimFault as exc:
        raise UserError(f"vsphere.host: vCenter {where} refused the session ({type(exc).__name__}: "
                        f"{redact.redact_text(exc.msg)})") from None


@contextlib.contextmanager
def session(spec: ClusterSpec, *, insecure: bool = False) -> Iterator[vim.ServiceInstance]:
    si = connect(spec, insecure=insecure)
    try:
        yield si
    finally:
        with contextlib.suppress(Exception):
            Disconnect(si)
