"""okdbench audit: the node VMs' hypervisor settings, and whether two clusters can fairly be compared."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from plumbing.errors import UserError
from provision.audit.rules import KINDS, SEVERITIES, of_kind, severity_rank

HELP = "audit node VMs on the hypervisor, or check two clusters are comparable"
DESCRIPTION = """\
With one --spec: read the cluster's VMs on the hypervisor (libvirt or vCenter) and list the
settings that cost performance or break OKD, then those that expose the VMs (security; rules: the
README's "Platform audit rules"). --only picks one rule set. Exit 1 when a finding is at or above
--fail-on.

With two --spec: print the two clusters' node sizes and settings side by side and exit 1 when
they are not comparable (different count, vCPU or memory per role, different disk types).
--live reads the sizes from the hypervisors instead of the specs.

  okdbench audit --spec examples/kvm-cluster.yaml [--only security] [--kubeconfig K]
  okdbench audit --spec kvm.yaml --spec vsphere.yaml [--live]"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", action="append", required=True, metavar="FILE",
                        help="cluster spec; give two to compare clusters")
    parser.add_argument("--live", action="store_true",
                        help="with two specs: compare the VMs on the hypervisors, not the specs")
    parser.add_argument("--fail-on", choices=[*SEVERITIES, "never"], default="high",
                        help="one spec: exit 1 when a finding is this severe or worse (default: high)")
    parser.add_argument("--only", choices=KINDS, default=None,
                        help="one spec: only this rule set (default: performance and security)")
    parser.add_argument("--kubeconfig", type=Path, default=None, metavar="FILE",
                        help="one spec: the installed cluster, to label findings by node and judge what must be "
                             "gone once nodes joined (kvm.ignition-left)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--insecure", action="store_true", help="do not verify vCenter's TLS certificate (unsafe)")


def run(args: argparse.Namespace) -> int:
    from provision.spec import load_spec  # here: `okdbench --help` does not need pydantic

    if len(args.spec) > 2:
        raise UserError(f"--spec: given {len(args.spec)} times; give one (audit) or two (compare)")
    specs = [load_spec(p) for p in args.spec]
    if len(specs) == 2:
        return _compare(specs, args)
    return _audit(specs[0], args)


def _audit(spec, args) -> int:
    from provision.audit.platform import audit_spec
    from provision.audit.report import findings_table

    result = audit_spec(spec, insecure=args.insecure, nodes=_nodes(args.kubeconfig, args.insecure))
    kinds = [args.only] if args.only else list(KINDS)
    findings = [f for f in result.findings if f.kind in kinds]
    if args.json:
        print(json.dumps({"cluster": spec.name, "platform": spec.platform, "rule_sets": kinds,
                          "vms": [v.to_json() for v in result.vms],
                          "findings": [f.to_json() for f in findings]}, indent=2, sort_keys=True))
    else:
        print(f"{spec.name} ({spec.platform}): {len(result.vms)} VM(s): "
              + ", ".join(f"{v.name} [{v.role} {v.vcpu} vCPU {v.memory_mib} MiB]" for v in result.vms))
        for kind in kinds:
            print(f"\n== {kind} ==")
            print("\n".join(findings_table(of_kind(findings, kind))))
    if args.fail_on == "never":
        return 0
    limit = severity_rank(args.fail_on)
    return 1 if any(severity_rank(f.severity) <= limit for f in findings) else 0


def _nodes(kubeconfig: Path | None, insecure: bool) -> list[dict] | None:
    if kubeconfig is None:
        return None
    from suites.kube import Kube, node_identities

    if not kubeconfig.is_file():
        raise UserError(f"--kubeconfig: {kubeconfig} does not exist; give the installed cluster's kubeconfig")
    try:
        return node_identities(Kube(kubeconfig, insecure=insecure, attempts=2))
    except Exception as exc:  # the API's own words, one line: TLS, auth, unreachable
        first = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(f"--kubeconfig: cannot list the cluster's nodes ({type(exc).__name__}: {first})") from None


def _compare(specs, args) -> int:
    from provision.audit import compare
    from provision.audit.report import comparison_table

    labels = [f"{s.name} ({s.platform})" for s in specs]
    if labels[0] == labels[1]:
        labels = [f"{lab} #{i + 1}" for i, lab in enumerate(labels)]
    if args.live:
        from provision.audit.platform import audit_spec

        sides = [compare.side_from_vms(lab, s.platform, audit_spec(s, insecure=args.insecure).vms)
                 for lab, s in zip(labels, specs)]
    else:
        sides = [compare.side_from_spec(s, lab) for lab, s in zip(labels, specs)]
    cmp = compare.compare(*sides)
    if args.json:
        print(json.dumps({"comparable": cmp.comparable, "rows": [list(r) for r in cmp.rows],
                          "findings": [f.to_json() for f in cmp.findings], "warnings": cmp.warnings}, indent=2))
    else:
        print("\n".join(comparison_table(cmp, labels[0], labels[1])))
    return 0 if cmp.comparable else 1
