"""okdbench demo: provision tiny VMs, measure two KVM configurations, print the comparison report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Aimed at a verdict on a guest metric (etcd under write load) within 10 minutes on an idle
# 2-core machine under emulation: 4 runs a side decided in 13 of 16 idle demos, 5 in a resampling
# of their runs ~85 % against ~60 % for 4; what was measured is in README "Quick start".
DEFAULT_RUNS, DEFAULT_REPEAT = 5, 2

HELP = "run the whole pipeline on local VMs (no OKD, no vCenter needed) and print the report path"
DESCRIPTION = """\
See okdbench do its job on one Linux machine. The demo starts libvirtd (in network namespace
`okdbench`) if none runs, builds a tiny test guest from Debian packages (kernel + busybox
initramfs, cached in .cache/), then, for two platforms -- kvm-default (libvirt's out-of-the-box
domain settings) and kvm-tuned (okdbench's template) -- makes --runs runs each, alternating:
every run provisions the micro topology (2 VMs; network with DHCP reservations and DNS, volumes,
domains with fw_cfg ignition) through the same code as a real KVM install, runs `pytest suites/`
(guest criteria and probes: CPU, etcd-style fdatasync, sequential write, a real etcd under
write load, guest-to-guest RTT, repeated --repeat times; platform audit; OKD suites skip: no OKD
cluster), and destroys it. Finally `okdbench report` compares kvm-tuned with kvm-default, with
one question named in advance (--primary guest.etcd.wal_fsync.p50: etcd's median WAL fsync); its
summary explains what the verdicts mean on this host.

Uses KVM when it can run a guest here, software emulation otherwise (run.json says which).
VM networks use 198.18.20.0/24 and 198.18.21.0/24 (--prefix and --net-offset move a second demo
out of the first one's way). Ctrl-C or SIGTERM stops it cleanly: the running session tears down
its VMs, network and volumes and its run reads `aborted`; a second Ctrl-C skips that and says
what was left. A guest that stops reporting is given up on after a bound derived from its probes'
pace (never a fixed total); the guest.boot criterion says which guest and after which step.

  okdbench demo
  okdbench demo --runs 6 --repeat 3 --out /tmp/demo"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS,
                        help=f"runs per platform (default {DEFAULT_RUNS}; the report needs >= 3)")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT,
                        help=f"probe rounds per run, in one boot (default {DEFAULT_REPEAT})")
    parser.add_argument("--out", type=Path, help="output folder (default reports/out/demo-<UTC time>/)")
    parser.add_argument("--platform", choices=["kvm"], default="kvm",
                        help="hypervisor to demo on (kvm: local libvirt; vSphere needs a vCenter, see README)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the VMs of each platform's last run in place for inspection")
    parser.add_argument("--load-host", action="store_true",
                        help="run a CPU burner (stress-ng) on this host during every second run of each platform, "
                             "so the report's Conditions section flags those runs as contended")
    parser.add_argument("--prefix", default="", metavar="TEXT",
                        help="prepended to the demo's cluster names, to run beside another demo on the same libvirtd")
    parser.add_argument("--net-offset", type=int, default=0, metavar="N",
                        help="move the demo's subnets up by N /24s (198.18.20.0/24 -> 198.18.(20+N).0/24), with --prefix")


def run(args: argparse.Namespace) -> int:
    from okdbench.demo import DemoInterrupted, Placement, run_demo

    try:
        result = run_demo(runs=args.runs, repeat=args.repeat, out=args.out, keep=args.keep, load_host=args.load_host,
                          placement=Placement(prefix=args.prefix, net_offset=args.net_offset))
    except DemoInterrupted as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 130
    facts = result.hypervisor
    mode = "KVM" if facts.get("domain_type") == "kvm" else "software emulation (TCG)"
    m, s = divmod(int(result.seconds), 60)
    print(f"demo: {len(result.runs)} runs in {m}m{s:02d}s on {mode}; results in {result.results_dir}")
    incomplete = [r for r in result.runs if r.run_dir is None or r.status != "complete"]
    expected = sorted({(f.label, f.criterion, f.detail.split(":")[0]) for f in result.failures if f.expected})
    for label, criterion, head in expected:
        print(f"demo: {label} {criterion} failed as expected ({head}): libvirt's defaults are what the audit flags")
    unexpected = [f for f in result.failures if not f.expected]
    for f in unexpected:
        print(f"demo: FAILED {f.label} {f.criterion} (run {f.run_id}): {f.detail}")
    for r in incomplete:
        print(f"demo: run {r.label}#{r.index} did not complete; see {r.log}")
    print(f"report: {result.report}")
    return 1 if unexpected or incomplete else 0
