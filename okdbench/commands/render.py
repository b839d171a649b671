"""okdbench render: every file a cluster needs, from its spec, without touching a hypervisor."""

from __future__ import annotations

import argparse
from pathlib import Path

from provision.base import platform_module
from provision.spec import load_spec

HELP = "write install-config, network/VM definitions, load balancer config and ignition snippets"
DESCRIPTION = """\
Render the cluster's files into --out without contacting libvirt or vCenter: install-config.yaml
(pull secret inside, file mode 0600, never printed), and for KVM the libvirt network XML (DHCP
reservation per node, api/api-int DNS, *.apps wildcard), one domain XML per node, haproxy.cfg and
the per-node NIC ignition snippets. Same spec and --out -> byte-identical files.

  okdbench render --spec examples/kvm-cluster.yaml --out build/c1"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, metavar="FILE", help="cluster spec YAML")
    parser.add_argument("--out", required=True, metavar="DIR", type=Path, help="output directory (created)")


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    paths = platform_module(spec.platform).render(spec, args.out)
    for p in paths:
        print(p)
    return 0
