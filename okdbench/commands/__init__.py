"""One module per `okdbench` subcommand: HELP, DESCRIPTION, add_arguments(parser), run(args) -> int."""
