"""Does capturing run conditions disturb the benchmark it watches? With vs without, side by side.

The measured "benchmark" is the worst case for an in-process sampler thread: a pure-Python CPU
loop in the same process as the capture (it needs the GIL the sampler also takes). Each pair runs
the loop once without capture and once inside a capture window (libvirt source on the local
libvirtd, every running domain treated as a node, sampled every --interval seconds), alternating
which goes first; the medians of the two series and their relative difference are printed.

    python benchmarks/context_overhead.py                        # 9 pairs, interval 5 s (the default)
    python benchmarks/context_overhead.py --interval 1 --pairs 15
    python benchmarks/context_overhead.py --aa          # A/A control: both sides without capture (the noise)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provision.kvm.stats import KvmStats  # noqa: E402
from suites.context.capture import Capture  # noqa: E402


def workload(n: int) -> tuple[float, float]:
    """(wall s, CPU s of this thread) for n iterations of a GIL-bound loop (the 'benchmark metric').
    On a shared machine wall time swings with everyone's load; thread CPU time only with interference."""
    t0, c0 = time.perf_counter(), time.thread_time()
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) % 1_000_003
    return time.perf_counter() - t0, time.thread_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=9)
    ap.add_argument("--interval", type=float, default=5.0, help="capture sampling interval, s (default 5, as --context-interval)")
    ap.add_argument("--uri", default="qemu:///system")
    ap.add_argument("--aa", action="store_true", help="A/A control: the 'with' side runs without capture too (noise level)")
    ap.add_argument("--iterations", type=int, default=6_000_000, help="loop length (~2-4 s on a 2-core machine)")
    args = ap.parse_args()

    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    try:
        conn = libvirt.openReadOnly(args.uri)
        domains = [d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)]
        conn.close()
    except libvirt.libvirtError as exc:
        print(f"libvirt at {args.uri} unreachable ({exc}); start libvirtd (the tests start it in netns okdbench)")
        return 2
    readings: list[int] = []
    notes: list[str] = []
    cap = Capture(lambda r, *_: readings.append(1), notes.append, args.interval)
    cap.add(KvmStats(args.uri, {d: d for d in domains}))
    without, with_ = [], []
    workload(args.iterations // 10)  # warm-up
    for i in range(args.pairs):
        order = ("off", "on") if i % 2 == 0 else ("on", "off")
        for mode in order:
            if mode == "on" and not args.aa:
                with cap.window("bench", i):
                    with_.append(workload(args.iterations))
            elif mode == "on":
                with_.append(workload(args.iterations))
            else:
                without.append(workload(args.iterations))
        print(f"pair {i + 1}/{args.pairs}: without {without[-1][0]:.3f} s wall / {without[-1][1]:.3f} s CPU, "
              f"with {with_[-1][0]:.3f} s wall / {with_[-1][1]:.3f} s CPU", flush=True)
    cap.close()
    print(f"\n{len(domains)} running domain(s) watched, sampling every {args.interval:g} s; {len(readings)} readings; "
          f"notes: {notes or 'none'}")
    for k, what in ((0, "wall"), (1, "thread CPU")):
        off, on = [x[k] for x in without], [x[k] for x in with_]
        m0, m1 = statistics.median(off), statistics.median(on)
        paired = statistics.median(b / a for a, b in zip(off, on))
        print(f"{what}: median without capture {m0:.3f} s, with {m1:.3f} s: {(m1 / m0 - 1) * 100:+.2f} %; "
              f"median of paired ratios {(paired - 1) * 100:+.2f} % "
              f"(spread without {min(off):.3f}-{max(off):.3f} s, with {min(on):.3f}-{max(on):.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
