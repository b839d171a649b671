"""okdbench render: every file a cluster needs, from its spec, without touching a hypervisor."""

from __future__ import annotations

import argparse
from pathlib import Path

from plumbing.errors import UserError

HELP = "write install-config, network/VM definitions, load balancer config and ignition snippets"
DESCRIPTION = """\
Render the cluster's files into --out without contacting libvirt or vCenter: install-config.yaml
(pull secret inside, file mode 0600, never printed), and for KVM the libvirt network XML (DHCP
reservation per node, api/api-int DNS, *.apps wildcard), one domain XML per node, haproxy.cfg and
the per-node NIC ignition snippets. Same spec and --out -> byte-identical files, on any machine:
render never probes the host. With kvm.domain_type: auto the domain XML is the one a KVM host
gets (type kvm, the spec's CPU mode); provision probes /dev/kvm and, where KVM cannot run a guest,
creates type qemu (TCG) domains with cpu mode maximum instead. --domain-type qemu shows those.

  okdbench render --spec examples/kvm-cluster.yaml --out build/c1"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, metavar="FILE", help="cluster spec YAML")
    parser.add_argument("--out", required=True, metavar="DIR", type=Path, help="output directory (created)")
    parser.add_argument("--domain-type", choices=("kvm", "qemu"),
                        help="KVM only: render domains of this type instead of the spec's (auto renders as kvm)")


def run(args: argparse.Namespace) -> int:
    # Imported here: `okdbench --help` and the other commands need none of it.
    from provision.base import platform_module
    from provision.spec import load_spec

    spec = load_spec(args.spec)
    options = {}
    if args.domain_type:
        if spec.platform != "kvm":
            raise UserError(f"--domain-type: only for platform kvm, the spec {args.spec} is {spec.platform}; drop --domain-type")
        options["dom_type"] = args.domain_type
    paths = platform_module(spec.platform).render(spec, args.out, **options)
    for p in paths:
        print(p)
    return 0
