"""Parse the in-cluster prober's log (suites/workloads/resilience-prober-job.yaml.j2) into Probes.

One line per request:  okdbench-probe 1 <start epoch ns> <curl exit> <HTTP status> <curl time_total s>
The log comes from a pod through the API: it may hold other output, bytes that are not UTF-8, a
last line cut by limitBytes, or anything a broken image prints. Such lines are skipped and
counted, never fatal; the prober's own diagnostics ("okdbench-prober: ...") are kept to quote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from suites.prober import Probe

MARK = "okdbench-probe"
DIAGNOSTIC = "okdbench-prober:"
MAX_LINE = 200  # a well-formed line is ~60 characters; longer ones are not read at all
MAX_MESSAGES = 3
# curl's exit codes a prober meets (man curl, EXIT CODES); others read "curl exit N".
CURL_ERRORS = {6: "DNSError", 7: "ConnectFailed", 28: "Timeout", 35: "TLSError", 52: "EmptyReply",
               55: "SendError", 56: "RecvError"}


@dataclass
class ProbeLog:
    probes: list[Probe] = field(default_factory=list)
    skipped: int = 0  # lines that were not a well-formed probe (garbage, cut, too long)
    truncated: bool = False  # the text did not end with a newline: its last line was dropped
    messages: list[str] = field(default_factory=list)  # the prober's own diagnostics, first few


def _probe(fields: list[str]) -> Probe | None:
    if len(fields) != 6 or fields[0] != MARK or fields[1] != "1":
        return None
    _, _, start_ns, rc, status, total_s = fields
    if not (start_ns.isdigit() and rc.isdigit() and status.isdigit() and len(status) == 3 and len(rc) <= 3):
        return None
    try:
        latency_s = float(total_s)
    except ValueError:
        return None
    if not (math.isfinite(latency_s) and 0 <= latency_s < 86400) or int(start_ns) == 0:
        return None
    code, exit_code = int(status), int(rc)
    if exit_code == 0:
        ok, detail = 200 <= code < 400, status
    else:
        ok, detail = False, CURL_ERRORS.get(exit_code, f"curl exit {exit_code}")
    return Probe(t=int(start_ns) / 1e9, latency_ms=latency_s * 1000.0, ok=ok, detail=detail)


def parse(text: str | bytes) -> ProbeLog:
    """Every well-formed probe line, in log order; everything else skipped and counted."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out = ProbeLog()
    lines = text.split("\n")
    if lines[-1]:  # no final newline: the last line may be cut mid-way, so it is not trusted
        out.truncated = True
        out.skipped += 1
    for line in lines[:-1]:
        line = line.rstrip("\r")
        if not line:
            continue
        if len(line) > MAX_LINE:
            out.skipped += 1
            continue
        if line.startswith(DIAGNOSTIC):
            if len(out.messages) < MAX_MESSAGES:
                out.messages.append(line)
            continue
        probe = _probe(line.split())
        if probe is None:
            out.skipped += 1
        else:
            out.probes.append(probe)
    return out
