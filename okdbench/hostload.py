"""A CPU burner on the hypervisor host (`okdbench demo --load-host`): shows what a contended run looks like.

stress-ng (Debian `stress-ng`) runs in its own process group and, where cgroup v2 is writable, in
a cgroup of its own (okdbench-hostload) so it is easy to see and to account for; two workers per
host CPU at normal priority make the guests' vCPUs wait in the run queue, which libvirt reports
as vcpu.N.delay and the report flags as contention.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path

from plumbing.errors import UserError

log = logging.getLogger("okdbench.hostload")

CGROUP = Path("/sys/fs/cgroup/okdbench-hostload")


def _into_cgroup(pid: int) -> bool:
    # Only a cgroup v2 root takes a new group by mkdir; on a v1 host /sys/fs/cgroup is a tmpfs where
    # mkdir makes a plain folder and "cgroup.procs" a plain file that proves nothing.
    if not (CGROUP.parent / "cgroup.controllers").exists():
        return False
    try:
        CGROUP.mkdir(exist_ok=True)
        (CGROUP / "cgroup.procs").write_text(f"{pid}\n")
        return True
    except OSError:
        return False  # cgroup v1, read-only /sys/fs/cgroup, no rights: the process alone still loads the host


def start(workers: int | None = None) -> subprocess.Popen:
    stress = shutil.which("stress-ng")
    if stress is None:
        raise UserError("--load-host: stress-ng is not installed; apt-get install stress-ng")
    n = workers or 2 * (os.cpu_count() or 1)
    # The child joins the cgroup before exec, so every worker stress-ng forks is in it too.
    proc = subprocess.Popen([stress, "--cpu", str(n), "--quiet"], start_new_session=True,
                            preexec_fn=lambda: _into_cgroup(os.getpid()),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        in_cgroup = str(proc.pid) in (CGROUP / "cgroup.procs").read_text().split()
    except OSError:
        in_cgroup = False
    where = f"cgroup {CGROUP.name}" if in_cgroup else "no cgroup"
    log.info("host load: stress-ng --cpu %d (pid %d, %s)", n, proc.pid, where)
    return proc


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # its own session: stress-ng's workers go with it
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
