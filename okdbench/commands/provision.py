"""okdbench provision: stand a cluster up from its spec (VMs, and OKD unless it is a test guest spec)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from provision.lifecycle import provision_cluster
from provision.spec import load_spec

HELP = "create the cluster's VMs and install OKD on them"
DESCRIPTION = """\
Create the network, disks and VMs of the spec, start them in parallel, then drive the OKD
user-provisioned install (openshift-install wait-for bootstrap-complete / install-complete, with
progress), remove the bootstrap node, approve only node CSRs that pass the OpenShift checks and set
the image registry to managed storage. A failure before the VMs run removes what was created.

  okdbench provision --spec examples/kvm-cluster.yaml --workdir /var/lib/okdbench/c1"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, metavar="FILE", help="cluster spec YAML")
    parser.add_argument("--workdir", required=True, metavar="DIR", type=Path,
                        help="where ignition, installer state, serial logs and the kubeconfig go")
    parser.add_argument("--regenerate", action="store_true",
                        help="recreate ignition configs older than their 24 h certificate lifetime")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (unsafe)")


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    result = provision_cluster(spec, args.workdir, insecure=args.insecure, regenerate_ignition=args.regenerate)
    print(json.dumps({
        "cluster": result.cluster, "platform": result.platform,
        "vms": [{"name": v.name, "role": v.role, "mac": v.mac, "ip": v.ip, "ref": v.ref,
                 "serial_log": str(v.serial_log) if v.serial_log else None} for v in result.vms],
        "timings": result.timings, "kubeconfig": str(result.kubeconfig) if result.kubeconfig else None,
        "findings": result.findings,
    }, indent=2))
    return 0
