"""CLI subcommands, one module per group. Each module exposes ``register(subparsers)``.

A command handler receives the parsed ``argparse.Namespace`` and returns an exit code; it raises
:class:`srum_core.commands.CliError` for bad input so the CLI prints one line and exits non-zero.
"""


class CliError(Exception):
    """Bad input on the command line: printed as one line, exit status 2."""


#: Modules under ``srum_core.commands`` that register subcommands, in ``--help`` order.
COMMAND_MODULES: tuple[str, ...] = ("backends_cmd", "evaluate_cmd", "map_cmd", "parse_cmd", "round_cmd", "sample_cmd", "world_cmd")
