"""okdbench audit (not yet available)."""

from okdbench.commands._unavailable import not_yet

HELP = "(audit: not yet available)"


def add_arguments(parser):
    pass


def run(args) -> int:
    return not_yet("audit", "planned")
