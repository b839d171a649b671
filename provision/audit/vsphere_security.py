"""vSphere security rules: pure functions over a VM snapshot (advanced settings, firmware, devices) and the session.

Advanced settings are judged with vSphere's own default when absent: copy/paste is disabled
and tools.setInfo.sizeLimit is 1 MiB unless a VM overrides them, so only an override is flagged
there; the settings whose default is permissive are flagged when absent.
"""

from __future__ import annotations

from typing import Callable

from provision.audit.rules import Finding
from provision.audit.vsphere import VsphereVm

IGNITION_KEY = "guestinfo.ignition.config.data"
SETINFO_LIMIT = 1048576
MAX_KEEP_OLD = 10


def _f(vm: VsphereVm, rule: str, observed: str, subject: str = "") -> Finding:
    return Finding(rule, vm.name, observed, vm.role, vm.node, subject)


def _opt(vm: VsphereVm, key: str) -> str | None:
    """An advanced setting by key, case-insensitively as vSphere treats them; '' counts as absent (a cleared key)."""
    low = key.lower()
    value = next((v for k, v in reversed(list(vm.extra_config.items())) if k.lower() == low), None)
    return value if value not in (None, "") else None


def _true(value: str | None) -> bool:
    return str(value).strip().upper() == "TRUE"


def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def check_ignition_guestinfo(vm: VsphereVm) -> list[Finding]:
    data = _opt(vm, IGNITION_KEY)
    if data is None:
        return []
    return [_f(vm, "vsphere.ignition-guestinfo", f"{IGNITION_KEY} holds {len(data)} bytes", IGNITION_KEY)]


def check_copy_paste(vm: VsphereVm) -> list[Finding]:
    keys = ("isolation.tools.copy.disable", "isolation.tools.paste.disable")
    enabled = [k for k in keys if (v := _opt(vm, k)) is not None and not _true(v)]
    return [_f(vm, "vsphere.copy-paste", f"{k} = {_opt(vm, k)}", k) for k in enabled]


def _must_be_true(vm: VsphereVm, rule: str, keys: tuple[str, ...]) -> list[Finding]:
    return [_f(vm, rule, f"{k} = {_opt(vm, k) or 'absent'}", k) for k in keys if not _true(_opt(vm, k))]


def check_device_connectable(vm: VsphereVm) -> list[Finding]:
    return _must_be_true(vm, "vsphere.device-connectable", ("isolation.device.connectable.disable",))


def check_disk_shrink(vm: VsphereVm) -> list[Finding]:
    return _must_be_true(vm, "vsphere.disk-shrink", ("isolation.tools.diskShrink.disable",
                                                     "isolation.tools.diskWiper.disable"))


def check_setinfo_limit(vm: VsphereVm) -> list[Finding]:
    raw = _opt(vm, "tools.setInfo.sizeLimit")
    if raw is None:
        return []
    n = _int(raw)
    if n is not None and 0 < n <= SETINFO_LIMIT:
        return []
    return [_f(vm, "vsphere.setinfo-limit", f"tools.setInfo.sizeLimit = {raw}", "tools.setInfo.sizeLimit")]


def check_remote_display(vm: VsphereVm) -> list[Finding]:
    raw = _opt(vm, "RemoteDisplay.maxConnections")
    n = _int(raw) if raw is not None else None
    if n is not None and 0 <= n <= 1:
        return []
    return [_f(vm, "vsphere.remote-display", f"RemoteDisplay.maxConnections = {raw or 'absent (unlimited)'}",
               "RemoteDisplay.maxConnections")]


def check_log_rotation(vm: VsphereVm) -> list[Finding]:
    out = []
    size = _opt(vm, "log.rotateSize")
    if not (_int(size) or 0) > 0:
        out.append(_f(vm, "vsphere.log-rotation", f"log.rotateSize = {size or 'absent (no rotation by size)'}",
                      "log.rotateSize"))
    keep = _opt(vm, "log.keepOld")
    if keep is not None and (_int(keep) is None or _int(keep) > MAX_KEEP_OLD):  # type: ignore[operator]
        out.append(_f(vm, "vsphere.log-rotation", f"log.keepOld = {keep}", "log.keepOld"))
    return out


def check_secure_boot(vm: VsphereVm) -> list[Finding]:
    if vm.firmware == "efi" and vm.secure_boot:
        return []
    return [_f(vm, "vsphere.secure-boot", f"firmware {vm.firmware or 'bios (default)'}, Secure Boot "
                                          f"{'on' if vm.secure_boot else 'off'}")]


def check_vtpm(vm: VsphereVm) -> list[Finding]:
    return [] if vm.vtpm else [_f(vm, "vsphere.vtpm", "no VirtualTPM device")]


def check_encryption(vm: VsphereVm) -> list[Finding]:
    return [] if vm.encrypted else [_f(vm, "vsphere.encryption", "config.keyId unset: VM files not encrypted")]


RULE_FUNCTIONS: dict[str, Callable[[VsphereVm], list[Finding]]] = {
    "vsphere.ignition-guestinfo": check_ignition_guestinfo,
    "vsphere.copy-paste": check_copy_paste,
    "vsphere.device-connectable": check_device_connectable,
    "vsphere.disk-shrink": check_disk_shrink,
    "vsphere.setinfo-limit": check_setinfo_limit,
    "vsphere.remote-display": check_remote_display,
    "vsphere.log-rotation": check_log_rotation,
    "vsphere.secure-boot": check_secure_boot,
    "vsphere.vtpm": check_vtpm,
    "vsphere.encryption": check_encryption,
}
# Judged on the session, not on a VM (platform.py adds it): listed so every rule has a home.
SESSION_RULES = ("vsphere.insecure-session",)


def session_finding(vcenter: str, insecure: bool) -> list[Finding]:
    """The run reached vCenter without verifying its certificate: one finding for the whole run."""
    if not insecure:
        return []
    return [Finding("vsphere.insecure-session", f"vcenter {vcenter}",
                    "TLS certificate not verified (--insecure / vsphere.insecure): the session could be intercepted")]


def audit_vsphere_security(vms: list[VsphereVm]) -> list[Finding]:
    return [f for vm in vms for check in RULE_FUNCTIONS.values() for f in check(vm)]
