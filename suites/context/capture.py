"""Capture run conditions beside a benchmark: sources sampled in a background thread per window.

Like kube-burner's measurements, capture is separate from the workloads: the plugin opens a
window around each repetition of a `benchmark` test; every source (guest Prometheus, libvirt,
vCenter) begins, is sampled every `interval_s` from one daemon thread, and ends with readings
that become ordinary samples (suite `context`, labels node/window/source). A source that fails
is noted once (one line) and dropped: conditions never fail or slow down a run.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Protocol

from plumbing.redact import first_line
from provision.base import Reading

log = logging.getLogger("okdbench.context")

MIN_WINDOW_S = 0.25  # shorter windows (e.g. parsing a guest's log afterwards) say nothing about conditions


class Source(Protocol):
    name: str

    def begin(self) -> None: ...
    def sample(self) -> None: ...
    def end(self) -> list[Reading]: ...
    def close(self) -> None: ...


Record = Callable[[Reading, str, int, str], None]  # reading, window, repetition, source name


class Capture:
    def __init__(self, record: Record, note: Callable[[str], None], interval_s: float = 5.0):
        self.record = record
        self.note = note
        self.interval_s = interval_s
        self.sources: dict[str, Source] = {}
        self.windows = 0

    def add(self, source: Source) -> None:
        self.sources.setdefault(source.name, source)

    def drop(self, name: str, why: str) -> None:
        source = self.sources.pop(name, None)
        self.note(f"conditions: {name} not captured: {why}")
        if source is not None:
            try:
                source.close()
            except Exception:  # noqa: BLE001 - a broken source may fail to close as well
                pass

    def _call(self, source: Source, what: str, fn: Callable[[], object]) -> object | None:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - any failure of a source degrades to a note
            self.drop(source.name, f"{what} failed ({first_line(exc)})")
            return None

    @contextmanager
    def window(self, name: str, repetition: int = 0) -> Iterator[None]:
        for s in list(self.sources.values()):
            self._call(s, "start", s.begin)
        active = list(self.sources.values())
        stop = threading.Event()

        def sampler() -> None:
            while not stop.wait(self.interval_s):
                for s in [s for s in active if s.name in self.sources]:
                    self._call(s, "sampling", s.sample)

        thread = threading.Thread(target=sampler, name=f"okdbench-context-{name}", daemon=True) if active else None
        t0 = time.monotonic()
        if thread is not None:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join()
            elapsed = time.monotonic() - t0
            for s in [s for s in active if s.name in self.sources]:
                readings = self._call(s, "reading", s.end)
                if elapsed < MIN_WINDOW_S or not readings:
                    continue
                for r in readings:  # type: ignore[union-attr]
                    self.record(r, name, repetition, s.name)
            if active and elapsed >= MIN_WINDOW_S:
                self.windows += 1
                log.info("conditions: window %s rep %d (%.1f s) from %s", name, repetition, elapsed,
                         ", ".join(s.name for s in active if s.name in self.sources) or "no source")

    def close(self) -> None:
        for s in list(self.sources.values()):
            try:
                s.close()
            except Exception:  # noqa: BLE001
                pass
        self.sources.clear()
