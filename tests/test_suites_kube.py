"""suites/kube.py against the fake API server: verified TLS, bounded retries over injected 5xx and
connection resets, and watches that resume after disconnects and re-list after 410 Gone."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from suites.kube import Informer, Kube, KubeError, TLSVerificationError, path_for
from tests.fakekube.certs import CertificateAuthority
from tests.support.fakekube import run_suites

NS = "default"
CMS = path_for("v1", "configmaps", NS)


def _wrong_ca_kubeconfig(fc, tmp_path):
    other = CertificateAuthority("someone-else")
    return fc.write_kubeconfig(tmp_path / "wrong-ca.kubeconfig", ca_pem=other.cert_pem)


def test_tls_is_verified_by_default(fake_cluster, tmp_path):
    kube = Kube(_wrong_ca_kubeconfig(fake_cluster, tmp_path))
    with pytest.raises(TLSVerificationError) as err:
        kube.groups()
    msg = str(err.value)
    assert "\n" not in msg and "--insecure" in msg and "certificate verify failed" in msg
    assert not fake_cluster.requests  # the handshake failed: no request was ever sent


def test_insecure_is_explicit_and_loud(fake_cluster, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="okdbench.kube"):
        kube = Kube(_wrong_ca_kubeconfig(fake_cluster, tmp_path), insecure=True)
    assert "NOT verified" in caplog.text
    assert kube.is_openshift()


def test_suites_report_a_tls_failure_as_an_error_in_one_line(fake_cluster, tmp_path):
    run = run_suites(fake_cluster, tmp_path / "results", "suites/test_api.py",
                     kubeconfig=_wrong_ca_kubeconfig(fake_cluster, tmp_path))
    assert run.status("api") == ["error"]
    assert run.detail("api").startswith("setup: cannot reach the cluster: TLS verification of https://127.0.0.1:")
    assert "Traceback" not in run.output


def test_retries_ride_out_5xx_and_resets(fake_cluster):
    faults = fake_cluster.set_faults(error_ratio=0.15, reset_ratio=0.15, seed=4)
    kube = Kube(fake_cluster.kubeconfig, backoff_max_s=0.2)
    for i in range(12):
        kube.create(CMS, {"metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}})
        assert kube.get(f"{CMS}/cm-{i}")["data"] == {"i": str(i)}
        kube.delete(f"{CMS}/cm-{i}")
    assert faults.injected_errors > 0 and faults.injected_resets > 0
    assert kube.retries == faults.injected_errors + faults.injected_resets
    assert not kube.list(CMS)  # no duplicates left behind by retried creates


def test_retries_are_bounded(fake_cluster):
    fake_cluster.set_faults(error_ratio=1.0)
    kube = Kube(fake_cluster.kubeconfig, attempts=3, backoff_max_s=0.05)
    with pytest.raises(KubeError) as err:
        kube.list(path_for("v1", "nodes"))
    assert err.value.status in (500, 503) and "\n" not in str(err.value)
    assert len([r for r in fake_cluster.requests if r.path == "/api/v1/nodes"]) == 3


def test_client_errors_are_not_retried(fake_cluster):
    kube = Kube(fake_cluster.kubeconfig)
    with pytest.raises(KubeError) as err:
        kube.get(f"{CMS}/missing")
    assert err.value.status == 404 and kube.retries == 0


class _Recorder:
    def __init__(self):
        self.events: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, type_, old, new):
        obj = new or old
        with self.lock:
            self.events.append((type_, obj["metadata"]["name"], (obj.get("data") or {}).get("v", "")))

    def wait(self, n: int, stall_s: float = 60) -> None:
        # Bounded by lack of progress: each new event restarts the clock.
        seen, since = -1, time.monotonic()
        while time.monotonic() - since < stall_s:
            with self.lock:
                if len(self.events) >= n:
                    return
                if len(self.events) != seen:
                    seen, since = len(self.events), time.monotonic()
            time.sleep(0.02)
        raise AssertionError(f"expected {n} events, got {self.events} (none new for {stall_s:.0f} s)")


def _wait_watches_open(fc, n: int, stall_s: float = 60) -> None:
    """Until the fake API has served n configmap watch requests (what a sleep used to guess)."""
    start = time.monotonic()
    while sum(r.watch and r.path.endswith("/configmaps") for r in list(fc.requests)) < n:
        assert time.monotonic() - start < stall_s, f"no configmap watch opened in {stall_s:.0f} s"
        time.sleep(0.02)


def _start(kube, rec):
    informer = Informer(kube, CMS)
    thread = informer.run_in_thread(rec, until=time.monotonic() + 3600)  # stopped by the test
    while informer.rv is None:
        time.sleep(0.01)
    return informer, thread


def test_watch_relists_after_410_and_counts_each_change_once(fake_cluster):
    kube = Kube(fake_cluster.kubeconfig)
    rec = _Recorder()
    cm = fake_cluster.res("configmaps")
    fake_cluster.store.create(cm, NS, {"metadata": {"name": "a"}, "data": {"v": "1"}})
    informer, thread = _start(kube, rec)
    rec.wait(1)
    _wait_watches_open(fake_cluster, 1)
    # Changes made while every watch is cut and the old resourceVersion is compacted away.
    with fake_cluster.store.lock:
        fake_cluster.cut_watches(gone=True)
        fake_cluster.store.mutate(cm, NS, "a", lambda o: o["data"].update(v="2"))
        fake_cluster.store.create(cm, NS, {"metadata": {"name": "b"}, "data": {"v": "1"}})
    rec.wait(3)
    fake_cluster.store.delete(cm, NS, "b")
    rec.wait(4)
    informer.stop()
    thread.join(5)
    assert rec.events == [("ADDED", "a", "1"), ("MODIFIED", "a", "2"), ("ADDED", "b", "1"), ("DELETED", "b", "1")]
    assert informer.stats.relists == 1
    assert not thread.errors


def test_watch_resumes_after_a_disconnect_without_relisting(fake_cluster):
    kube = Kube(fake_cluster.kubeconfig)
    rec = _Recorder()
    cm = fake_cluster.res("configmaps")
    informer, thread = _start(kube, rec)
    # Cut until the informer has resumed once (a single cut could land before its watch is open).
    start = time.monotonic()
    while informer.stats.resumes == 0:
        assert time.monotonic() - start < 60, "the informer never resumed a cut watch"
        fake_cluster.cut_watches(gone=False)
        time.sleep(0.05)
    fake_cluster.store.create(cm, NS, {"metadata": {"name": "c"}, "data": {"v": "1"}})
    rec.wait(1)
    informer.stop()
    thread.join(5)
    assert rec.events == [("ADDED", "c", "1")]
    assert informer.stats.resumes >= 1 and informer.stats.relists == 0
