"""The `okdbench` console script: one subcommand per module in okdbench.commands."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager

from okdbench import __version__
from plumbing.errors import UserError, bounded_lines
from plumbing.redact import error_line

# Order is the order shown in --help.
COMMANDS = ["doctor", "render", "provision", "destroy", "run", "audit", "report", "nightly", "demo"]

DESCRIPTION = """\
okdbench tells you, with evidence, whether OKD runs as well on KVM/libvirt as on VMware vSphere.
It stands up the same cluster on both hypervisors, checks the proof-of-concept acceptance
criteria, times real workloads many times, and writes a report that says what is faster,
by how much, and how sure we are."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (naming the fix), not usage text plus error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, error_line(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """All subcommands, or just `only`: each command module imports what it needs (the spec
    models, libvirt, ...), and a report should not wait seconds for the others' imports."""
    parser = _Parser(
        prog="okdbench", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"okdbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in [only] if only else COMMANDS:
        module = importlib.import_module(f"okdbench.commands.{name}")
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _default_sigterm_in_child() -> None:
    # A forked worker (the report's chart pool) must die on SIGTERM even when it is stuck on a lock
    # inherited from its parent: a Python-level handler would never run there.
    if signal.getsignal(signal.SIGTERM) is _interrupt:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_default_sigterm_in_child)


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM (a timer, `kill`, `timeout`) stops a command as Ctrl-C does, so it cleans up what it started."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    parser = build_parser(words[0] if words and words[0] in COMMANDS else None)
    # `run` forwards unknown arguments to pytest.
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from plumbing.redact import install_log_filter, register_env_secrets

    install_log_filter()
    register_env_secrets()
    if not args.command:
        parser.print_help()
        return 2
    if args.command == "run":
        args.pytest_args = extra
    try:
        with sigterm_as_interrupt():
            return int(args._run(args) or 0)
    except UserError as exc:
        print(error_line(f"okdbench {args.command}: error: {exc}"), file=sys.stderr)
        for line in bounded_lines(exc.details):
            print("  " + error_line(line), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"okdbench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
