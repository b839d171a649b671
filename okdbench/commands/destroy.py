"""okdbench destroy: remove exactly what `okdbench provision` created for a spec."""

from __future__ import annotations

import argparse


HELP = "remove the cluster's VMs, disks and network (only what okdbench created)"
DESCRIPTION = """\
Remove the VMs, volumes and network that provisioning created for the spec, found by okdbench's
ownership marks, and nothing else. Running it again removes nothing and succeeds.

  okdbench destroy --spec examples/kvm-cluster.yaml"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, metavar="FILE", help="cluster spec YAML")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (unsafe)")


def run(args: argparse.Namespace) -> int:
    # Imported here: `okdbench --help` and the other commands need none of it.
    from provision.lifecycle import destroy_cluster
    from provision.spec import load_spec

    spec = load_spec(args.spec)
    removed = destroy_cluster(spec, insecure=args.insecure)
    for item in removed:
        print(f"removed {item}")
    if not removed:
        print(f"nothing to remove for {spec.name}")
    return 0
