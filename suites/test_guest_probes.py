"""In-guest probes of each test-guest VM: CPU, etcd-style fdatasync, sequential write, a real etcd, guest-to-guest RTT.

The guest runs every probe okdbench.repeat times in one boot (cheaper than rebooting: a boot costs
~7-11 s under emulation, a probe round ~5 s) and prints `OKDBENCH probe <name> rep=<i> ...`;
repetition i of each benchmark here records rep=i of every guest. The etcd-style check follows
etcd's guidance (fio --rw=write --bs=2300 --fdatasync=1): sequential 2300-byte writes, each followed
by fdatasync, p99 latency and IOPS. The etcd probe runs a real single-member etcd on the guest's
disk under a fixed write load: WAL fsync and backend commit quantiles come from etcd's own
/metrics histograms (bucket deltas over the load), put latency from the client; the synthetic
fdatasync probe stays beside it so the two can be compared.

A guest that went silent (see guestlog.Pace) fails each probe with the step it stopped after;
what the other guests measured is recorded all the same.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import pytest

from provision.kvm import guestlog, histogram
from suites.guests import load_guests, silent_note


@pytest.fixture(scope="module")
def guests(request, okdbench_config, run_writer) -> list[guestlog.Guest]:
    return load_guests(request, okdbench_config, run_writer)


@pytest.fixture
def repetition(request) -> int:
    callspec = getattr(request.node, "callspec", None)
    return int(callspec.params.get("_okdbench_repetition", 0)) if callspec else 0


@contextmanager
def _probe_results(guests, name: str, rep: int, okdbench_config):
    """Yields [(guest, key=value)] of the guests that reported probe `name` repetition `rep`; after the
    caller recorded those, fails naming the guests without a result (error, or went silent)."""
    args = okdbench_config.spec.kvm.kernel_args if okdbench_config.spec.kvm else ""
    requested = next((w.split("=", 1)[1].split(",") for w in (args or "").split() if w.startswith("okdbench.probes=")), [])
    if name not in requested:
        pytest.skip(f"probe {name} not requested (add it to okdbench.probes= in kvm.kernel_args)")
    ran = guestlog.guest_repeat(args)
    if rep >= ran:
        pytest.fail(f"the guests ran {ran} repetition(s); set okdbench.repeat={rep + 1} in kvm.kernel_args", pytrace=False)
    if name == "rtt" and len(guests) < 2:
        pytest.skip("guest-to-guest RTT needs two guests; the spec has one")
    out, bad = [], []
    for g in guests:
        found = [kv for kv in g.report.probe(name) if kv.get("rep") == str(rep)]
        if not found:
            bad.append(f"{g.machine.name}: no result{silent_note(guests, g.machine.name)}")
        elif "error" in found[0]:
            bad.append(f"{g.machine.name}: {found[0]['error']}")
        else:
            out.append((g, found[0]))
    yield out
    assert not bad, f"probe {name} rep {rep}: " + "; ".join(bad)


def _num(kv: dict[str, str], key: str, node: str) -> float:
    value = float(kv.get(key, "nan"))
    assert math.isfinite(value) and value > 0, f"{node}: {key}={kv.get(key)!r} is not a positive number"
    return value


@pytest.mark.benchmark
def test_cpu_hash_throughput(guests, record, repetition, okdbench_config):
    with _probe_results(guests, "cpu", repetition, okdbench_config) as results:
        for g, kv in results:
            record("guest.cpu.sha256", _num(kv, "mbps", g.machine.name), "MB/s", better="higher",
                   node=g.machine.name, buffer_mib=int(kv.get("mib", 0)))


@pytest.mark.benchmark
def test_etcd_style_fdatasync_latency(guests, record, repetition, okdbench_config):
    with _probe_results(guests, "fsync", repetition, okdbench_config) as results:
        for g, kv in results:
            node = g.machine.name
            p50, p99, iops = _num(kv, "p50_ms", node), _num(kv, "p99_ms", node), _num(kv, "iops", node)
            assert p99 >= p50, f"{node}: p99 {p99} ms < p50 {p50} ms"
            labels = {"node": node, "disk": kv.get("disk", ""), "write_bytes": int(kv.get("bytes", 0)), "writes": int(kv.get("count", 0))}
            record("guest.disk.fdatasync.p99", p99, "ms", **labels)
            record("guest.disk.fdatasync.p50", p50, "ms", **labels)
            record("guest.disk.fdatasync.iops", iops, "IOPS", better="higher", **labels)


@pytest.mark.benchmark
def test_sequential_write_throughput(guests, record, repetition, okdbench_config):
    with _probe_results(guests, "seqwrite", repetition, okdbench_config) as results:
        for g, kv in results:
            record("guest.disk.seqwrite", _num(kv, "mbps", g.machine.name), "MB/s", better="higher",
                   node=g.machine.name, disk=kv.get("disk", ""), mib=int(kv.get("mib", 0)))


@pytest.mark.benchmark
def test_guest_to_guest_round_trip(guests, record, repetition, okdbench_config):
    with _probe_results(guests, "rtt", repetition, okdbench_config) as results:
        for g, kv in results:
            node = g.machine.name
            record("guest.net.rtt.avg", _num(kv, "avg_ms", node), "ms", node=node, peer=kv.get("peer", ""))
            loss = float(kv.get("loss_pct", "0"))
            assert loss < 50, f"{node}: {loss:.0f}% packet loss to {kv.get('peer')}"


def etcd_figures(kv: dict[str, str], node: str) -> dict[str, float]:
    """Milliseconds (and puts/s) from one etcd probe line: quantiles of etcd's own histograms, client put latency."""
    figures: dict[str, float] = {}
    for hist in ("wal", "commit"):
        try:
            buckets = histogram.parse_buckets(kv.get(f"{hist}_buckets", ""))
        except ValueError as exc:
            raise AssertionError(f"{node}: etcd {hist} histogram unreadable ({exc})") from None
        count = buckets[-1][1]
        assert count > 0 and count == float(kv.get(f"{hist}_count", "nan")), \
            f"{node}: etcd {hist} histogram has {count:g} observations, _count says {kv.get(f'{hist}_count')}"
        for q in (50, 99):
            figures[f"{hist}.p{q}"] = histogram.quantile(q / 100, buckets) * 1e3  # type: ignore[operator]
    for q in (50, 99):
        figures[f"put.p{q}"] = _num(kv, f"put_p{q}_ms", node)
    figures["put.rate"] = _num(kv, "put_rate", node)
    return figures


@pytest.mark.benchmark
def test_real_etcd_under_write_load(guests, record, repetition, okdbench_config):
    with _probe_results(guests, "etcd", repetition, okdbench_config) as results:
        for g, kv in results:
            node = g.machine.name
            f = etcd_figures(kv, node)
            labels = {"node": node, "puts": int(kv.get("put_count", 0)), "value_bytes": int(kv.get("put_bytes", 0))}
            record("guest.etcd.wal_fsync.p99", f["wal.p99"], "ms", **labels)
            record("guest.etcd.wal_fsync.p50", f["wal.p50"], "ms", **labels)
            record("guest.etcd.backend_commit.p99", f["commit.p99"], "ms", **labels)
            record("guest.etcd.put.p99", f["put.p99"], "ms", **labels)
            record("guest.etcd.put.rate", f["put.rate"], "puts/s", better="higher", **labels)
