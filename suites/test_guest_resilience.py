"""guest-resilience: freeze and reset a test-guest VM through the hypervisor; the guest measures the gap.

The micro topology has no OKD, so there is no application to probe: the test guest is its own
client. With okdbench.gapwatch=N in kvm.kernel_args it keeps printing a heartbeat a second with
the host's clock read through its RTC after its probes; a freeze shows as the RTC jumping ahead
of the guest's stopped clocks, a reset as the time from its last heartbeat to the first of its
next boot (1 s resolution). Recorded as resilience.<disruption>.unavailable_s, like the cluster
suite's, so the report's Resilience section compares the platforms the same way.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest

from provision import base
from provision.kvm import guestlog
from results.timeline import Timeline, write_timeline
from suites.guests import load_guests

log = logging.getLogger("okdbench.resilience")

KINDS = ("freeze", "reset")
STALL_S = 120.0  # no new serial output for this long: the guest is not coming back


def _wait(serial: Path, what: str, predicate) -> guestlog.GuestReport:
    size, last = -1, time.monotonic()
    while True:
        report = guestlog.read_report(serial)
        if predicate(report):
            return report
        now_size = serial.stat().st_size if serial.exists() else 0
        if now_size != size:
            size, last = now_size, time.monotonic()
        if time.monotonic() - last > STALL_S:
            raise TimeoutError(f"{what}: no serial output for {STALL_S:.0f} s")
        time.sleep(0.25)


def heartbeat_probes(beats: list[float], t0: float) -> list[tuple[float, float, bool]]:
    """The heartbeats as a 1 Hz prober would have seen them: each one answered, each missing second failed."""
    out: list[tuple[float, float, bool]] = []
    for a, b in zip(beats, beats[1:]):
        # The RTC ticks in whole seconds and the beats come every ~1.1 s: a step of 2 is no outage.
        out += [(a + k - t0, 0.0, False) for k in range(1, int(b - a))] if b - a >= 3 else []
        out.append((b - t0, 0.0, True))
    return out


def _alive_in_boot(r: guestlog.GuestReport, boot: int) -> int:
    return sum(1 for b, _ in r.alive if b == boot)


@pytest.mark.criterion("guest-resilience")
def test_guest_resilience(request, okdbench_config, run_writer, record, note):
    spec = okdbench_config.spec
    guests = load_guests(request, okdbench_config, run_writer)
    args = (spec.kvm.kernel_args or "") if spec.kvm else ""
    if "okdbench.gapwatch=" not in args:
        pytest.skip("the guests keep no heartbeat: add okdbench.gapwatch=600 to kvm.kernel_args")
    kinds = [k for k in KINDS if k in spec.resilience.disruptions]
    if not kinds:
        pytest.skip("resilience.disruptions names neither freeze nor reset")
    target = next((g for g in guests if g.machine is not None and g.machine.role == "worker"), guests[0])
    vm, serial = target.vm.name, Path(target.vm.serial_log)
    problems = []
    settled = 0  # heartbeats seen when the previous disruption was over: the next waits for 3 more
    for kind in kinds:
        before = _wait(serial, f"{vm} heartbeats",
                       lambda r: _alive_in_boot(r, r.boots) >= 2 and len(r.alive) >= settled + 3)
        t0 = time.time()
        try:
            if kind == "freeze":
                base.pause(spec, vm)
                time.sleep(spec.resilience.freeze_s)  # the disruption itself
                base.resume(spec, vm)
            else:
                base.reset(spec, vm)
        finally:
            try:
                base.restore(spec, vm)
            except Exception as exc:
                problems.append(f"VM {vm} could not be restored ({exc})")
                run_writer.update_info(warnings=[*run_writer.info.warnings, problems[-1]])
        try:
            if kind == "freeze":
                after = _wait(serial, f"{vm} reporting the freeze", lambda r: len(r.gaps_s) > len(before.gaps_s)
                              or len(r.alive) >= len(before.alive) + 2 * spec.resilience.freeze_s + 5)
            else:
                after = _wait(serial, f"{vm} back after the reset",
                              lambda r: r.boots > before.boots and _alive_in_boot(r, r.boots) >= 1)
        except TimeoutError as exc:
            problems.append(f"{kind}: {exc}")
            continue
        outages = guestlog.outages_s(after)[len(guestlog.outages_s(before)):]
        gap = max(outages, default=0.0)
        record(f"resilience.{kind}.unavailable_s", gap, "s", node=target.machine.name if target.machine else vm,
               vm=vm, role="worker", disruption=kind, measured_by="guest")
        note(f"{kind}: guest out for {gap:.0f} s")
        settled = len(after.alive)
        beats = [rtc for _b, rtc in after.alive[max(0, len(before.alive) - 3):]]
        write_timeline(run_writer.dir, f"{kind}-guest", Timeline(disruption=kind, node=vm, vm=vm, t0=t0,
                                                                 probes=heartbeat_probes(beats, t0)))
    # The evidence: the guest's log after the disruptions (load_guests copied it before them).
    (run_writer.dir / "serial").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(serial, run_writer.dir / "serial" / f"{vm}.log")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
