"""Shared by the test-guest suites (guest_boot, guest_probes): wait for the VMs, pair them with the spec."""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

import pytest

from provision.kvm import guestlog

log = logging.getLogger("okdbench.suites.guests")

NOT_A_GUEST = "no test guest (pass --spec of a spec with okd.guest: testguest)"


def guest_timeout_s(spec) -> float:
    # Boot (~7-11 s under emulation) plus one probe round (~10-20 s) per repetition, with slack for a loaded host.
    return 180.0 + 90.0 * guestlog.guest_repeat(spec.kvm.kernel_args if spec.kvm else None)


def load_guests(request, okdbench_config, run_writer) -> list[guestlog.Guest]:
    """Shared by the guest suites: skip unless a test-guest spec was provisioned, then wait for every VM."""
    spec = okdbench_config.spec
    if spec is None or spec.okd.guest != "testguest":
        pytest.skip(NOT_A_GUEST)
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
            return guestlog.collect_guests(spec, result, guest_timeout_s(spec), progress=progress)
    except guestlog.GuestTimeout as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        keep_serial_logs(result, run_writer.dir / "serial")


def keep_serial_logs(result, dest: Path) -> None:
    """Copy the guests' serial logs into the run folder: the workdir goes with the cluster, the evidence stays.

    A test guest's log holds no secret (the ignition is reported as a hash), unlike an FCOS node's.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for vm in result.vms:
        if vm.serial_log is not None and Path(vm.serial_log).exists():
            shutil.copyfile(vm.serial_log, dest / f"{vm.name}.log")
