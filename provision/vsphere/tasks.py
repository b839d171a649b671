"""Waiting for vCenter tasks: many at once, with progress (phase, done/total, elapsed) and a deadline."""

from __future__ import annotations

import logging
import time
from typing import Callable, Mapping

from pyVmomi import vim, vmodl

from plumbing import redact
from plumbing.errors import UserError
from provision.vsphere.connect import CONNECTION_ERRORS, connection_guard

log = logging.getLogger("okdbench.vsphere")

# Poll fast at first (the simulator and small clones finish in milliseconds), then back off so a
# real vCenter is not hammered while a 10-minute clone runs.
POLL_MIN_S = 0.05
POLL_MAX_S = 2.0
PROGRESS_EVERY_S = 10.0


class TaskFailed(UserError):
    """A vCenter task ended in error; str() names the phase, the object and vCenter's reason."""


def fault_text(fault: BaseException | None) -> str:
    """vCenter's reason in one line: the fault type, the property it objects to, its message."""
    name = type(fault).__name__.rsplit(".", 1)[-1]
    parts = [name]
    prop = getattr(fault, "invalidProperty", None)
    if prop:
        parts.append(str(prop))
    msg = getattr(fault, "msg", None) or getattr(fault, "localizedMessage", None)
    if msg and not str(msg).startswith("*types.") and str(msg) != name:  # govmomi's simulator echoes the Go type
        parts.append(f"({msg})")
    return redact.redact_text(" ".join(" ".join(parts).split()))


def start_tasks(via: object, phase: str, starts: Mapping[str, Callable[[], vim.Task]]) -> dict[str, vim.Task]:
    """Call each start (e.g. functools.partial(vm.PowerOnVM_Task)); return name -> task. via: any
    managed object of the session, to name vCenter if the connection breaks while starting."""
    tasks = {}
    for name, start in starts.items():
        with connection_guard(via, f"starting {phase} of {name}"):
            tasks[name] = start()
    return tasks


def wait_tasks(tasks: Mapping[str, vim.Task], phase: str, *, timeout: float,
               stall: bool = False) -> dict[str, object]:
    """Wait for every task; return name -> result. Raises TaskFailed at the timeout (pending tasks are
    cancelled), or once every task has ended if any failed, so the caller rolls back a settled state.
    stall=True: `timeout` counts from the last change of any pending task's progress (a vMotion may
    take long, but it must keep moving).
    """
    started = time.monotonic()
    pending = dict(tasks)
    results: dict[str, object] = {}
    errors: list[str] = []
    last_report = started
    total = len(tasks)
    poll = POLL_MIN_S
    progress: dict[str, object] = {}
    last_move = started
    while pending:
        for name, task in list(pending.items()):
            try:
                with connection_guard(task, f"waiting for {phase} of {name}"):
                    info = task.info
            except vmodl.fault.ManagedObjectNotFound:
                errors.append(f"{name}: task vanished")
                del pending[name]
                continue
            if stall and progress.get(name) != (info.state, info.progress):
                progress[name], last_move = (info.state, info.progress), time.monotonic()
            if info.state == vim.TaskInfo.State.success:
                results[name] = info.result
                del pending[name]
            elif info.state == vim.TaskInfo.State.error:
                errors.append(f"{name}: {fault_text(info.error)}")
                del pending[name]
        elapsed = time.monotonic() - started
        if not pending:
            break
        if (time.monotonic() - last_move if stall else elapsed) > timeout:
            for task in pending.values():  # best effort: a cancelled clone leaves less to roll back
                try:
                    task.CancelTask()
                except (vmodl.MethodFault, *CONNECTION_ERRORS):
                    pass
            raise TaskFailed(f"vsphere {phase}: {len(pending)} of {total} tasks still running after {elapsed:.0f}s "
                             f"{'with no progress for ' + format(timeout, '.0f') + 's ' if stall else ''}"
                             f"({', '.join(sorted(pending))}); vCenter is overloaded or stuck")
        if time.monotonic() - last_report >= PROGRESS_EVERY_S:
            last_report = time.monotonic()
            log.info("vsphere %s: %d/%d done, %.0fs elapsed", phase, total - len(pending), total, elapsed)
        time.sleep(poll)
        poll = min(POLL_MAX_S, poll * 1.5)
    elapsed = time.monotonic() - started
    if errors:
        raise TaskFailed(f"vsphere {phase} failed: {'; '.join(errors)}")
    log.info("vsphere %s: %d/%d done in %.1fs", phase, total, total, elapsed)
    return results
