"""Read what a test guest reported on its serial console (see provision/kvm/testguest/init.sh.j2).

Pure parsing plus one wait loop; no hypervisor calls, so it works the same for a serial log
written by libvirt, by QEMU directly, or copied from another machine. The wait has no total
bound: it gives up on a guest that printed nothing new for longer than its probes' own pace
allows (see Pace), and says which step it stopped after.
"""

from __future__ import annotations

import logging
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
    steps: list[tuple[str, float | None]] = field(default_factory=list)  # every line: (what, guest uptime t=)
    linger_max_s: float | None = None  # set while the guest waits for its peer (its own bound)
    done: bool = False
    done_uptime_s: float | None = None
    boots: int = 0  # "boot" lines: more than one when the VM was reset or rebooted
    alive: list[tuple[int, float]] = field(default_factory=list)  # okdbench.gapwatch: (boot number, host RTC epoch s)
    gaps_s: list[float] = field(default_factory=list)  # freezes the guest saw within one boot
    shutdowns: list[str] = field(default_factory=list)  # graceful stops the guest carried out (their reason)

    def probe(self, name: str) -> list[dict[str, str]]:
        return [kv for n, kv in self.probes if n == name]

    @property
    def last_step(self) -> str:
        return self.steps[-1][0] if self.steps else "nothing (no line from /init yet)"


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
        rep = f" rep={kv['rep']}" if "rep" in kv else ""
        report.steps.append((" ".join([kind, *words[:1]]) + rep, _float(kv.get("t", ""))))
        report.linger_max_s = _float(kv.get("max_s", "")) if kind == "linger" else None
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
        elif kind == "shutdown":
            report.shutdowns.append(kv.get("reason", "unknown"))
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


log = logging.getLogger("okdbench.guestlog")


@dataclass(frozen=True)
class Pace:
    """How long a guest may print nothing new: `factor` x the slowest step seen so far, at least `floor_s`.

    Steps are the gaps between consecutive lines of any guest (guest uptime t=), the boot included;
    a lingering guest (waiting for its peer) gets its own announced bound on top of the floor.
    """

    floor_s: float = 60.0
    factor: float = 4.0

    def bound(self, slowest_step_s: float) -> float:
        return max(self.floor_s, self.factor * slowest_step_s)


def slowest_step_s(reports) -> float:
    """The longest gap between two consecutive lines of any guest, waiting for a peer excluded."""
    slowest = 0.0
    for r in reports:
        prev = 0.0  # the first line's t= is the time since the kernel started
        for what, t in r.steps:
            if t is None:
                continue
            if not what.startswith("linger"):
                slowest = max(slowest, t - prev)
            prev = t
    return slowest


@dataclass
class WaitOutcome:
    """Every guest's report; `silent` names the guests given up on, each with a one-line why."""

    reports: dict[str, GuestReport]
    silent: dict[str, str] = field(default_factory=dict)


def wait_for_guests(logs: dict[str, Path], pace: Pace = Pace(), poll_s: float = 0.5, progress=None,
                    clock=time.monotonic, sleep=time.sleep) -> WaitOutcome:
    """Poll the serial logs until every guest printed 'OKDBENCH done' or went silent.

    A guest is silent when it printed no new line for longer than pace.bound(slowest step so far)
    (a lingering guest: its announced linger time plus the floor). No total bound: a slow host
    only makes the steps, and so the bound, longer. `progress(done_names, pending_names,
    elapsed_s)` is called whenever a guest finishes or is given up on.
    """
    start = clock()
    reports: dict[str, GuestReport] = {name: GuestReport() for name in logs}
    last_new = {name: start for name in logs}
    finished: set[str] = set()
    silent: dict[str, str] = {}
    while True:
        now = clock()
        for name, path in logs.items():
            if name in finished or name in silent:
                continue
            report = read_report(path)
            if len(report.steps) > len(reports[name].steps):
                last_new[name] = now
            reports[name] = report
            if report.done:
                finished.add(name)
                if progress:
                    progress(sorted(finished), sorted(set(logs) - finished - set(silent)), now - start)
        slowest = slowest_step_s(reports.values())
        for name in sorted(set(logs) - finished - set(silent)):
            report = reports[name]
            bound = pace.bound(slowest)
            if report.linger_max_s is not None:
                bound = max(bound, report.linger_max_s + pace.floor_s)
            quiet = now - last_new[name]
            if quiet > bound:
                t = report.steps[-1][1] if report.steps else None
                silent[name] = (f"{name} went silent after {report.last_step!r}"
                                + (f" (guest uptime {t:.1f} s)" if t is not None else "")
                                + f": nothing new for {quiet:.0f} s, bound {bound:.0f} s = max({pace.floor_s:.0f} s,"
                                + f" {pace.factor:g} x slowest step {slowest:.1f} s)"
                                + (f" + linger {report.linger_max_s:.0f} s" if report.linger_max_s is not None else ""))
                log.warning("no longer waiting for %s", silent[name])
                if progress:
                    progress(sorted(finished), sorted(set(logs) - finished - set(silent)), now - start)
        if len(finished) + len(silent) == len(logs):
            return WaitOutcome(reports=reports, silent=silent)
        sleep(poll_s)


@dataclass
class Guest:
    """One test-guest VM: what the spec says it should be, and what it reported."""

    machine: object  # provision.spec.Machine
    vm: object  # provision.base.ProvisionedVM
    report: GuestReport
    silent: str | None = None  # why the host stopped waiting for it (one line), None if it finished


def guest_repeat(kernel_args: str | None) -> int:
    """okdbench.repeat=N from the test guest's extra kernel arguments (1 when absent)."""
    for word in (kernel_args or "").split():
        if word.startswith("okdbench.repeat="):
            try:
                return max(1, int(word.split("=", 1)[1]))
            except ValueError:
                return 1
    return 1


def collect_guests(spec, result, pace: Pace = Pace(), progress=None) -> list[Guest]:
    """Wait for every VM of `result` to finish (or go silent) and pair it with its spec machine (by MAC)."""
    by_mac = {m.mac: m for m in spec.machines()}
    logs = {vm.name: Path(vm.serial_log) for vm in result.vms if vm.serial_log is not None}
    outcome = wait_for_guests(logs, pace, progress=progress)
    return [Guest(machine=by_mac.get(vm.mac), vm=vm, report=outcome.reports[vm.name], silent=outcome.silent.get(vm.name))
            for vm in result.vms if vm.name in outcome.reports]
