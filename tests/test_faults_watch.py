"""Watch streams cut and answered with 410 Gone while the cluster changes underneath: the soak
re-lists, resumes, and counts each real transition exactly once — none missed, none invented.

(tests/test_suites_okd.py checks the complementary case: a restart seen before a 410 cut is not
counted again by the re-list.)"""

from __future__ import annotations

import pytest

from tests.fakekube.scenarios import node_names
from tests.support.fakekube import run_suites, started


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    with started(tmp_path_factory.mktemp("fake-okd")) as fc:
        worker = node_names(fc, "worker")[0]

        def cut_then_change():
            # The changes land while every watch is down and its resourceVersion is gone:
            # only a re-list (and a diff against what was known) can see them.
            fc.cut_watches(gone=True)
            fc.set_node_ready(worker, False, "KubeletNotReady")
            fc.set_condition("clusteroperators", "ingress", "Degraded", "True", "IngressDegraded", "scripted")

        fc.on_first_watch("events", 0.5, cut_then_change)
        fc.on_first_watch("events", 1.2, lambda: fc.cut_watches(gone=True))  # a second cut: nothing new to count
        run = run_suites(fc, tmp_path_factory.mktemp("results"), "suites/test_stability.py", "--soak", "3s",
                         "--wait-ready", "5")
        yield fc, run, worker


def test_changes_during_a_cut_are_counted_once(soak):
    fc, run, worker = soak
    assert "Traceback" not in run.output, run.output[-2000:]
    value = lambda m: list(run.samples(m)["value"])  # noqa: E731
    assert value("stability.node_notready_transitions") == [1]
    assert value("stability.operator_degradations") == [1]
    assert value("stability.container_restarts") == [0]
    assert value("stability.watch_relists")[0] >= 6  # two cuts, at least nodes + pods + operators each
    assert run.status("stability") == ["failed"]
    detail = run.detail("stability")
    assert worker in detail and "ingress" in detail


def test_the_soak_window_was_not_shortened(soak):
    _, run, _ = soak
    assert run.samples("stability.window")["value"].iloc[0] >= 3
