"""okdbench run: run the POC criteria and benchmarks (pytest suites/) against a cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from plumbing.errors import UserError
from okdbench.paths import ROOT

HELP = "run the POC criteria and benchmarks against a cluster (wraps `pytest suites/`)"
DESCRIPTION = """\
Run the acceptance criteria and benchmarks in suites/ as one run; results go to results/<run_id>/.

  okdbench run --platform kvm --kubeconfig ~/okd-kvm/auth/kubeconfig --repeat 5
  okdbench run --platform vsphere --spec examples/vsphere-cluster.yaml --label vsphere-prod
  okdbench run --platform kvm --kubeconfig K -- -k builds -x     # extra pytest arguments

Every option of the pytest plugin is accepted (--label, --spec, --kubeconfig, --repeat,
--results-dir, --run-id, --keep-cluster, --soak, --insecure); anything else goes to pytest."""


def add_arguments(parser) -> None:
    parser.add_argument("--platform", required=True, choices=["kvm", "vsphere"], help="hypervisor the cluster runs on")
    parser.add_argument("--suite", action="append", default=[], metavar="NAME",
                        help="run only this suite (e.g. builds, operators); repeatable; default all")


def pytest_command(args) -> list[str]:
    targets = [str(ROOT / "suites" / f"test_{s.replace('-', '_')}.py") for s in args.suite] or [str(ROOT / "suites")]
    extra = [a for a in args.pytest_args if a != "--"]
    return [sys.executable, "-m", "pytest", *targets, f"--platform={args.platform}", *extra]


def run(args) -> int:
    missing = [t for t in pytest_command(args)[3:] if t.endswith(".py") and not Path(t).exists()]
    if missing:
        names = sorted(p.name.removeprefix("test_").removesuffix(".py") for p in (ROOT / "suites").glob("test_*.py"))
        raise UserError(f"--suite: no suite {missing[0]}; choose from {', '.join(names)}")
    return subprocess.call(pytest_command(args), cwd=ROOT)
