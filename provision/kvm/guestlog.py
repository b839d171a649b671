"""Read what a test guest reported on its serial console (see provision/kvm/testguest/init.sh.j2).

Pure parsing plus one wait loop; no hypervisor calls, so it works the same for a serial log
written by libvirt, by QEMU directly, or copied from another machine.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

_LINE = re.compile(r"OKDBENCH ([a-z_]+)((?: [^\s=]+(?:=\S*)?)*)\s*$")
_KV = re.compile(r"([A-Za-z0-9_.]+)=(\S*)")


@dataclass
class GuestReport:
    """Everything one guest said; `done` is True once it finished its work."""

    boot_uptime_s: float | None = None
    ignition: dict[str, str] = field(default_factory=dict)
    nics: list[dict[str, str]] = field(default_factory=list)
    dhcp: dict[str, str] = field(default_factory=dict)
    dns: dict[str, str] = field(default_factory=dict)
    guest: dict[str, str] = field(default_factory=dict)
    probes: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (probe name, key=value)
    errors: list[str] = field(default_factory=list)  # lines reporting error=
    done: bool = False
    done_uptime_s: float | None = None
    boots: int = 0  # "boot" lines: more than one when the VM was reset or rebooted
    alive: list[tuple[int, float]] = field(default_factory=list)  # okdbench.gapwatch: (boot number, host RTC epoch s)
    gaps_s: list[float] = field(default_factory=list)  # freezes the guest saw within one boot

    def probe(self, name: str) -> list[dict[str, str]]:
        return [kv for n, kv in self.probes if n == name]


def parse_line(line: str) -> tuple[str, list[str], dict[str, str]] | None:
    """'OKDBENCH probe fsync rep=0 p99_ms=1.2' -> ('probe', ['fsync'], {'rep': '0', 'p99_ms': '1.2'}).

    Kernel messages may precede the marker on the same line (the console is shared), so the
    match starts at 'OKDBENCH ' wherever it is.
    """
    idx = line.find("OKDBENCH ")
    if idx < 0:
        return None
    m = _LINE.match(line[idx:].rstrip("\r\n"))
    if not m:
        return None
    words = m.group(2).split()
    positional = [w for w in words if "=" not in w]
    kv = dict(_KV.findall(" ".join(w for w in words if "=" in w)))
    return m.group(1), positional, kv


def parse_serial(text: str) -> GuestReport:
    report = GuestReport()
    for raw in text.splitlines():
        parsed = parse_line(raw)
        if parsed is None:
            continue
        kind, words, kv = parsed
        if "error" in kv:
            report.errors.append(" ".join([kind, *words, f"error={kv['error']}"]))
        if kind == "boot" and "uptime" in kv:
            report.boot_uptime_s = _float(kv["uptime"])
            report.boots += 1
        elif kind == "alive" and _float(kv.get("rtc", "")) is not None:
            report.alive.append((report.boots, _float(kv["rtc"])))
        elif kind == "gap" and _float(kv.get("seconds", "")) is not None:
            report.gaps_s.append(_float(kv["seconds"]))
        elif kind == "guest":
            report.guest = kv
        elif kind == "ignition":
            report.ignition = kv
        elif kind == "nic":
            report.nics.append(kv)
        elif kind == "dhcp":
            report.dhcp = kv
        elif kind == "dns":
            report.dns = kv
        elif kind == "probe" and words:
            report.probes.append((words[0], kv))
        elif kind == "done":
            report.done = True
            report.done_uptime_s = _float(kv.get("t", ""))
    return report


def outages_s(report: GuestReport) -> list[float]:
    """Every interruption the guest lived through (1 s resolution, the RTC's): freezes it saw from
    inside, and for each reset/reboot the host-clock time from its last heartbeat to the next boot's first."""
    out = list(report.gaps_s)
    for (boot_a, rtc_a), (boot_b, rtc_b) in zip(report.alive, report.alive[1:]):
        if boot_b != boot_a:
            out.append(max(0.0, rtc_b - rtc_a))
    return out


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_report(path: Path) -> GuestReport:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return GuestReport()
    return parse_serial(data.decode("utf-8", errors="replace"))


class GuestTimeout(Exception):
    """Some guests did not print 'OKDBENCH done' in time. str() is one line."""


def wait_for_guests(logs: dict[str, Path], timeout_s: float, poll_s: float = 0.5,
                    progress=None) -> dict[str, GuestReport]:
    """Poll the serial logs until every guest printed 'OKDBENCH done' (or the timeout passes).

    `progress(done_names, pending_names, elapsed_s)` is called whenever the set of finished guests changes.
    Returns every report (complete or not); raises GuestTimeout naming the guests still pending.
    """
    start = time.monotonic()
    reports: dict[str, GuestReport] = {}
    finished: set[str] = set()
    while True:
        for name, path in logs.items():
            if name not in finished:
                reports[name] = read_report(path)
                if reports[name].done:
                    finished.add(name)
                    if progress:
                        progress(sorted(finished), sorted(set(logs) - finished), time.monotonic() - start)
        if len(finished) == len(logs):
            return reports
        if time.monotonic() - start > timeout_s:
            pending = sorted(set(logs) - finished)
            last = {n: (reports[n].probes[-1][0] if reports[n].probes else "no probe yet") for n in pending}
            raise GuestTimeout(
                f"guests {', '.join(pending)} did not finish within {timeout_s:.0f} s "
                f"(last step: {', '.join(f'{n}: {s}' for n, s in last.items())}); see their serial logs"
            )
        time.sleep(poll_s)


@dataclass
class Guest:
    """One test-guest VM: what the spec says it should be, and what it reported."""

    machine: object  # provision.spec.Machine
    vm: object  # provision.base.ProvisionedVM
    report: GuestReport


def guest_repeat(kernel_args: str | None) -> int:
    """okdbench.repeat=N from the test guest's extra kernel arguments (1 when absent)."""
    for word in (kernel_args or "").split():
        if word.startswith("okdbench.repeat="):
            try:
                return max(1, int(word.split("=", 1)[1]))
            except ValueError:
                return 1
    return 1


def collect_guests(spec, result, timeout_s: float, progress=None) -> list[Guest]:
    """Wait for every VM of `result` to finish and pair it with its spec machine (by MAC)."""
    by_mac = {m.mac: m for m in spec.machines()}
    logs = {vm.name: Path(vm.serial_log) for vm in result.vms if vm.serial_log is not None}
    reports = wait_for_guests(logs, timeout_s, progress=progress)
    return [Guest(machine=by_mac.get(vm.mac), vm=vm, report=reports[vm.name]) for vm in result.vms if vm.name in reports]
