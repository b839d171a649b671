"""Debian's Prometheus and node-exporter on loopback for tests: live scraping, or backfilled known series.

    with node_exporter(tmp) as ne, prometheus(tmp, targets=[ne]) as prom:   # scrapes this machine's /proc every 1 s
        prom.url                                                              # http://127.0.0.1:PORT
    with prometheus(tmp, openmetrics=TEXT) as prom: ...                      # promtool backfills TEXT first
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

STALL_S = 60.0  # no progress (process alive, port not answering) for this long = give up


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} not installed (Debian packages prometheus, prometheus-node-exporter)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path) -> None:
    """Until url answers 200; bounded by the process dying or STALL_S without an answer."""
    deadline = time.monotonic() + STALL_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {STALL_S:.0f} s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def _process(cmd: list[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_http(ready_url, proc, log)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Endpoint:
    address: str  # 127.0.0.1:PORT
    url: str

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        params = {"query": promql} | ({"time": f"{at:.3f}"} if at is not None else {})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=30) as r:
            return json.loads(r.read())["data"]["result"]


@contextlib.contextmanager
def node_exporter(workdir: Path) -> Iterator[Endpoint]:
    """node-exporter reading this machine's real /proc, on a loopback port."""
    binary = require("prometheus-node-exporter")
    port = free_port()
    address = f"127.0.0.1:{port}"
    cmd = [binary, f"--web.listen-address={address}", "--collector.disable-defaults", "--collector.cpu",
           "--collector.loadavg", "--collector.meminfo", "--collector.vmstat", "--collector.diskstats"]
    with _process(cmd, workdir / "node-exporter.log", f"http://{address}/metrics"):
        yield Endpoint(address, f"http://{address}")


@contextlib.contextmanager
def prometheus(workdir: Path, targets: list[Endpoint] = (), openmetrics: str | None = None,
               scrape_s: float = 1.0) -> Iterator[Endpoint]:
    """Prometheus on loopback scraping targets every scrape_s; openmetrics text is backfilled first."""
    binary = require("prometheus")
    data = workdir / "prometheus-data"
    data.mkdir(parents=True, exist_ok=True)
    if openmetrics is not None:
        promtool = require("promtool")
        src = workdir / "backfill.om"
        src.write_text(openmetrics)
        done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(src), str(data)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    every = f"{round(scrape_s * 1000)}ms"  # Prometheus durations take no fractions ("0.5s" is refused)
    jobs = [{"job_name": f"node-{i}", "scrape_interval": every, "static_configs": [{"targets": [t.address]}]}
            for i, t in enumerate(targets)]
    config = workdir / "prometheus.yml"
    config.write_text(json.dumps({"global": {"scrape_interval": every}, "scrape_configs": jobs}))
    port = free_port()
    address = f"127.0.0.1:{port}"
    cmd = [binary, f"--config.file={config}", f"--storage.tsdb.path={data}", f"--web.listen-address={address}",
           "--storage.tsdb.retention.time=30d", "--web.enable-lifecycle"]
    with _process(cmd, workdir / "prometheus.log", f"http://{address}/-/ready"):
        yield Endpoint(address, f"http://{address}")


def wait_for_series(prom: Endpoint, promql: str, n: int = 1) -> None:
    """Until promql returns at least n series; bounded by STALL_S without any."""
    deadline = time.monotonic() + STALL_S
    while time.monotonic() < deadline:
        if len(prom.query(promql)) >= n:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{promql}: no series after {STALL_S:.0f} s")
