"""Out-of-cluster prober: paced, bounded requests to one URL, every outcome and latency recorded.

Requests start on a fixed schedule (start + k * interval), so a slow answer does not stretch the
schedule: missed slots are skipped and counted, never bunched up. The prober stops itself after
`max_probes` (a bound on how long it can run if the caller never stops it).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("okdbench.prober")


@dataclass(frozen=True)
class Probe:
    t: float  # wall clock (epoch s) when the request started
    latency_ms: float
    ok: bool
    detail: str  # HTTP status, or the exception's type


class Prober:
    """fetch() returns an HTTP status (or raises); 2xx/3xx count as success."""

    def __init__(self, fetch: Callable[[], int], interval_s: float, *, max_probes: int = 100_000, name: str = "prober"):
        self.fetch = fetch
        self.interval_s = interval_s
        self.max_probes = max_probes
        self.name = name
        self.probes: list[Probe] = []
        self.skipped_slots = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def start(self) -> "Prober":
        self._thread.start()
        return self

    def stop(self) -> list[Probe]:
        self._stop.set()
        self._thread.join()
        return self.snapshot()

    def snapshot(self) -> list[Probe]:
        with self._lock:
            return list(self.probes)

    def _run(self) -> None:
        start = time.monotonic()
        slot = 0
        while not self._stop.is_set() and len(self.probes) < self.max_probes:
            t_wall, t0 = time.time(), time.perf_counter()
            try:
                status = self.fetch()
                ok, detail = 200 <= status < 400, str(status)
            except Exception as exc:  # every failure is an outcome to record, never a crash
                ok, detail = False, type(exc).__name__
            probe = Probe(t=t_wall, latency_ms=(time.perf_counter() - t0) * 1000.0, ok=ok, detail=detail)
            with self._lock:
                self.probes.append(probe)
            slot += 1
            now = time.monotonic() - start
            behind = int(now / self.interval_s) - slot
            if behind > 0:
                self.skipped_slots += behind
                slot += behind
            self._stop.wait(max(0.0, start + slot * self.interval_s - time.monotonic()))
        if len(self.probes) >= self.max_probes:
            log.warning("%s: stopped after %d requests (its bound)", self.name, self.max_probes)
