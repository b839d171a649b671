"""Shared body of subcommands whose capability has not landed yet."""

import sys


def not_yet(name: str, issue: str) -> int:
    print(f"okdbench {name}: not yet available ({issue}); see README 'Status'", file=sys.stderr)
    return 2
