"""okdbench nightly (not yet available)."""

from okdbench.commands._unavailable import not_yet

HELP = "(nightly: not yet available)"


def add_arguments(parser):
    pass


def run(args) -> int:
    return not_yet("nightly", "planned")
