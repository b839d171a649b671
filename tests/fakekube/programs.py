"""What run-to-completion workload pods "print": fio and iperf3 JSON in the tools' own layout.

The fake recognises a workload by its command line, as a kubelet would just run it; values come
from the cluster's per-node performance table so tests know what the suites must report. The
resilience suite's in-cluster prober is not imitated: its shell script runs for real
(tests/fakekube/processes.py) against the fake's Service network.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from tests.fakekube.cluster import FakeCluster


@dataclass
class ProgramResult:
    log: str
    exit_code: int = 0
    run_s: float | None = None  # None: the cluster's default job run time; inf: runs until deleted
    live: bool = False  # the command runs for real (processes.py): its output is the log, its exit ends the pod


Program = Callable[["FakeCluster", dict], "ProgramResult | None"]


def _argv(pod: dict) -> list[str]:
    c = pod["spec"]["containers"][0]
    return [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]


def _percentiles(p99_ns: float) -> dict[str, int]:
    # fio prints this fixed set of percentiles; the shape below mirrors clat/sync output.
    keys = ["1.000000", "5.000000", "10.000000", "20.000000", "30.000000", "40.000000", "50.000000",
            "60.000000", "70.000000", "80.000000", "90.000000", "95.000000", "99.000000", "99.500000",
            "99.900000", "99.950000", "99.990000"]
    fractions = [0.2, 0.25, 0.28, 0.32, 0.36, 0.4, 0.45, 0.5, 0.56, 0.62, 0.72, 0.8, 1.0, 1.1, 1.4, 1.6, 2.2]
    return {k: int(p99_ns * f) for k, f in zip(keys, fractions)}


def fio(cluster: "FakeCluster", pod: dict) -> ProgramResult | None:
    argv = _argv(pod)
    if not argv or argv[0].rsplit("/", 1)[-1] != "fio":
        return None
    node = pod["spec"].get("nodeName", "")
    perf = cluster.node_perf(node)
    jobs = []
    joined = " ".join(argv)
    for name in re.findall(r"--name[= ](\S+)", joined):
        section = joined.split(f"--name={name}", 1)[-1].split("--name=", 1)[0]
        sync = "--fdatasync=1" in section
        bw_kib = perf["write_mbps"] * 1e6 / 1024 if not sync else 2300 * 1000 / (perf["fsync_p99_ms"] * 0.45) / 1024
        job = {
            "jobname": name, "groupid": 0, "error": 0, "eta": 0, "elapsed": 3,
            "job options": {"name": name},
            "read": {"io_bytes": 0, "io_kbytes": 0, "bw_bytes": 0, "bw": 0, "iops": 0.0, "runtime": 0, "total_ios": 0},
            "write": {"io_bytes": 23068672, "io_kbytes": 22528, "bw_bytes": int(bw_kib * 1024), "bw": int(bw_kib),
                      "iops": bw_kib * 1024 / (2300 if sync else 1048576), "runtime": 3000, "total_ios": 10029,
                      "clat_ns": {"min": 1200, "max": 90000, "mean": 4000.0, "stddev": 1000.0, "N": 10029,
                                  "percentile": _percentiles(9000)}},
            "sync": {"total_ios": 10029 if sync else 0,
                     "lat_ns": {"min": 900000, "max": int(perf["fsync_p99_ms"] * 3e6),
                                "mean": perf["fsync_p99_ms"] * 0.45e6, "stddev": 300000.0, "N": 10029 if sync else 0,
                                **({"percentile": _percentiles(perf["fsync_p99_ms"] * 1e6)} if sync else {})}},
        }
        jobs.append(job)
    out = {"fio version": "fio-3.35", "timestamp": 1700000000, "time": "Tue Nov 14 22:13:20 2023",
           "global options": {"directory": "/data"}, "jobs": jobs,
           "disk_util": [{"name": "vda", "read_ios": 0, "write_ios": 10400, "util": 88.0}]}
    return ProgramResult(json.dumps(out, indent=2) + "\n")


def iperf3(cluster: "FakeCluster", pod: dict) -> ProgramResult | None:
    argv = _argv(pod)
    if not argv or "iperf3" not in argv[0]:
        return None
    if "-s" in argv or "--server" in argv:
        return ProgramResult("-----------------------------------------------------------\nServer listening on 5201\n",
                             run_s=float("inf"))
    node = pod["spec"].get("nodeName", "")
    perf = cluster.node_perf(node)
    bps = perf["net_gbps"] * 1e9
    secs = 10.0
    sender = {"socket": 5, "start": 0, "end": secs, "seconds": secs, "bytes": int(bps * secs / 8),
              "bits_per_second": bps, "retransmits": 12, "max_snd_cwnd": 3145728, "max_rtt": int(perf["rtt_ms"] * 3000),
              "min_rtt": int(perf["rtt_ms"] * 400), "mean_rtt": int(perf["rtt_ms"] * 1000), "sender": True}
    receiver = {"socket": 5, "start": 0, "end": secs + 0.04, "seconds": secs + 0.04, "bytes": int(bps * secs / 8),
                "bits_per_second": bps * secs / (secs + 0.04), "sender": True}
    out = {
        "start": {"connected": [{"socket": 5, "local_host": pod["status"].get("podIP", ""), "local_port": 40000,
                                 "remote_host": argv[argv.index("-c") + 1] if "-c" in argv else "", "remote_port": 5201}],
                  "version": "iperf 3.16", "system_info": "Linux", "test_start": {"protocol": "TCP", "num_streams": 1,
                                                                               "duration": int(secs)}},
        "intervals": [],
        "end": {"streams": [{"sender": sender, "receiver": receiver}],
                "sum_sent": {k: sender[k] for k in ("start", "end", "seconds", "bytes", "bits_per_second", "retransmits", "sender")},
                "sum_received": receiver,
                "cpu_utilization_percent": {"host_total": 35.1, "host_user": 1.2, "host_system": 33.9,
                                            "remote_total": 20.5, "remote_user": 0.9, "remote_system": 19.6},
                "sender_tcp_congestion": "cubic", "receiver_tcp_congestion": "cubic"},
    }
    return ProgramResult(json.dumps(out, indent=2) + "\n")


def incluster_prober(cluster: "FakeCluster", pod: dict) -> ProgramResult | None:
    """suites/workloads/resilience-prober-job.yaml.j2: `sh -c <script>` printing okdbench-probe lines."""
    argv = _argv(pod)
    if len(argv) == 3 and argv[0].rsplit("/", 1)[-1] == "sh" and argv[1] == "-c" and "okdbench-probe 1" in argv[2]:
        return ProgramResult("", run_s=float("inf"), live=True)
    return None


DEFAULT_PROGRAMS: list[Program] = [fio, iperf3, incluster_prober]
