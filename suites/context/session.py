"""Wire the condition capture to a run: its sources from the run's spec and cluster, its samples into the run."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from provision.base import Reading, stats_module
from results.schema import Sample
from results.store import ResultsWriteError
from suites.context.capture import Capture
from suites.context.prometheus import GuestStats

log = logging.getLogger("okdbench.context")

SUITE = "context"
NO_HYPERVISOR = ("conditions: hypervisor side not captured: only --kubeconfig was given, so okdbench has no "
                 "hypervisor address or credentials (pass the cluster's --spec as well)")


def sample_of(reading: Reading, window: str, repetition: int, source: str, cfg: Any, cluster: str) -> Sample:
    return Sample(run_id=cfg.run_id, platform=cfg.label, cluster=cluster, suite=SUITE, metric=reading.metric,
                  value=float(reading.value), unit=reading.unit, better=reading.better,  # type: ignore[arg-type]
                  repetition=repetition, labels={"node": reading.node, "window": window, "source": source})


def open_capture(cfg: Any, run_writer: Any, interval_s: float) -> Capture:
    """A capture recording into run_writer; the hypervisor source when the run has a --spec."""
    noted: set[str] = set()

    def note(line: str) -> None:
        if line in noted:
            return
        noted.add(line)
        log.warning("%s", line)
        try:
            run_writer.update_info(warnings=[*run_writer.info.warnings, line])
        except ResultsWriteError as exc:  # may run in the sampler thread; the next record() ends the run
            log.error("%s", exc)

    def record(reading: Reading, window: str, repetition: int, source: str) -> None:
        try:
            run_writer.record_sample(sample_of(reading, window, repetition, source, cfg, run_writer.info.cluster))
        except ResultsWriteError as exc:  # as the plugin's `record`: measuring on without recording is wasted work
            pytest.exit(f"okdbench: {exc}", returncode=pytest.ExitCode.INTERNAL_ERROR)

    capture = Capture(record, note, interval_s)
    if cfg.spec is None:
        note(NO_HYPERVISOR)
    else:
        try:
            capture.add(stats_module(cfg.platform).open_stats(cfg.spec, insecure=cfg.insecure))
        except Exception as exc:  # noqa: BLE001 - conditions never stop a run
            note(f"conditions: hypervisor side not captured: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    return capture


def add_guest_source(capture: Capture, kube: Any, suite_options: Any, cfg: Any, namespace: str | None) -> None:
    """The cluster's Prometheus (thanos-querier route, bearer token), tried once per run."""
    if getattr(capture, "guest_tried", False):
        return
    capture.guest_tried = True  # type: ignore[attr-defined]
    from suites.routes import prometheus_querier

    try:
        query = prometheus_querier(kube, address=suite_options.ingress_address, insecure=cfg.insecure)
    except Exception as exc:  # noqa: BLE001 - no monitoring stack, no token: a note, not a failure
        capture.note(f"conditions: guest side not captured: {str(exc).splitlines()[0]}")
        return
    capture.add(GuestStats(query, namespace))
