"""Shared by the test-guest suites (guest_boot, guest_probes): one wait for the VMs per run, paired with the spec."""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

import pytest

from provision.kvm import guestlog

log = logging.getLogger("okdbench.suites.guests")

NOT_A_GUEST = "no test guest (pass --spec of a spec with okd.guest: testguest)"

_guests_key = pytest.StashKey[list]()


def load_guests(request, okdbench_config, run_writer) -> list[guestlog.Guest]:
    """Skip unless a test-guest spec was provisioned; else the guests, waited for once per run.

    Both guest suites call this from their fixtures; the first call waits (until every guest is
    done or went silent, see guestlog.Pace) and the result is kept in the session's stash, so the
    second suite reads the same reports instead of waiting again.
    """
    spec = okdbench_config.spec
    if spec is None or spec.okd.guest != "testguest":
        pytest.skip(NOT_A_GUEST)
    cached = request.config.stash.get(_guests_key, None)
    if cached is not None:
        return cached
    result = request.getfixturevalue("infra")
    facts = dict(run_writer.info.hypervisor or result.facts or {})
    if "domain_type" in facts and "emulated" not in facts:
        # Management reads "emulated: true" next to every number measured under TCG.
        facts["emulated"] = facts["domain_type"] != "kvm"
        run_writer.update_info(hypervisor=facts)

    def progress(done, pending, elapsed):
        log.info("guests finished %d/%d after %.1f s%s", len(done), len(done) + len(pending), elapsed,
                 f" (waiting for {', '.join(pending)})" if pending else "")

    # The guests run their probes now (every repetition in one boot): this is the window whose conditions matter.
    capture = request.getfixturevalue("conditions_capture")
    try:
        with capture.window("guests.run", 0) if capture is not None else contextlib.nullcontext():
            guests = guestlog.collect_guests(spec, result, progress=progress)
    finally:
        keep_serial_logs(result, run_writer.dir / "serial")
    request.config.stash[_guests_key] = guests
    return guests


def silent_note(guests: list[guestlog.Guest], name: str) -> str:
    """' (went silent after ...)' for a guest the host stopped waiting for, else ''."""
    why = next((g.silent for g in guests if g.machine is not None and g.machine.name == name and g.silent), None)
    return f" ({why})" if why else ""


def keep_serial_logs(result, dest: Path) -> None:
    """Copy the guests' serial logs into the run folder: the workdir goes with the cluster, the evidence stays.

    A test guest's log holds no secret (the ignition is reported as a hash), unlike an FCOS node's.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for vm in result.vms:
        if vm.serial_log is not None and Path(vm.serial_log).exists():
            shutil.copyfile(vm.serial_log, dest / f"{vm.name}.log")
