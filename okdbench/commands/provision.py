"""okdbench provision: stand a cluster up from its spec (VMs, and OKD unless it is a test guest spec)."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path


log = logging.getLogger("okdbench.provision")

HELP = "create the cluster's VMs and install OKD on them"
DESCRIPTION = """\
Create the network, disks and VMs of the spec, start them in parallel, then drive the OKD
user-provisioned install (openshift-install wait-for bootstrap-complete / install-complete, with
progress), remove the bootstrap node, approve only node CSRs that pass the OpenShift checks and set
the image registry to managed storage. A failure before the VMs run removes what was created.

The work directory (ignition, installer state with auth/kubeconfig, serial logs) defaults to
.cache/work/<cluster name> under the current directory ($OKDBENCH_WORKDIR/<cluster name> when set),
created readable by its owner only; running again with the same one reuses fresh ignition files.

  okdbench provision --spec examples/kvm-cluster.yaml
  okdbench provision --spec examples/kvm-cluster.yaml --workdir /var/lib/okdbench/c1"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, metavar="FILE", help="cluster spec YAML")
    parser.add_argument("--workdir", metavar="DIR", type=Path,
                        help="where ignition, installer state, serial logs and the kubeconfig go "
                             "(default .cache/work/<cluster>, or $OKDBENCH_WORKDIR/<cluster>)")
    parser.add_argument("--regenerate", action="store_true",
                        help="recreate ignition configs older than their 24 h certificate lifetime")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (unsafe)")


def default_workdir(cluster: str) -> Path:
    return Path(os.environ.get("OKDBENCH_WORKDIR") or Path(".cache") / "work") / cluster


def run(args: argparse.Namespace) -> int:
    # Imported here: `okdbench --help` and the other commands need none of it.
    from provision.lifecycle import provision_cluster
    from provision.spec import load_spec

    spec = load_spec(args.spec)
    workdir = args.workdir or default_workdir(spec.name)
    if not workdir.exists():
        # It will hold the install's credentials (auth/kubeconfig, kubeadmin-password).
        workdir.mkdir(mode=0o700, parents=True)
    if args.workdir is None:  # say where the default put it (an error stays one line with --workdir)
        log.info("provision: work directory %s", workdir.resolve())
    result = provision_cluster(spec, workdir, insecure=args.insecure, regenerate_ignition=args.regenerate)
    print(json.dumps({
        "cluster": result.cluster, "platform": result.platform,
        "vms": [{"name": v.name, "role": v.role, "mac": v.mac, "ip": v.ip, "ref": v.ref,
                 "serial_log": str(v.serial_log) if v.serial_log else None} for v in result.vms],
        "timings": result.timings, "kubeconfig": str(result.kubeconfig) if result.kubeconfig else None,
        "findings": result.findings,
    }, indent=2))
    return 0
