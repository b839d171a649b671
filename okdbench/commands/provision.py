"""okdbench provision (not yet available)."""

from okdbench.commands._unavailable import not_yet

HELP = "(provision: not yet available)"


def add_arguments(parser):
    pass


def run(args) -> int:
    return not_yet("provision", "planned")
