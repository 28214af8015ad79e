"""``python -m srum_core``: the command-line entry point.

Subcommands live in :mod:`srum_core.commands`; each is imported only when the CLI is built, so importing
this module does nothing heavy.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from .commands import COMMAND_MODULES, CliError


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``error: ...``), exit status 2, like the commands' own."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m srum_core",
        description="SRUM Workbench engine: self-rewarding post-training of unified multimodal models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log engine progress at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"srum_core.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")  # other libraries' logs
    # The project's own messages ("warning: records.jsonl:line 3: ...") go to the stderr of this call, whatever
    # handlers the root logger already has (basicConfig is a no-op when it has one, e.g. inside another app).
    project = logging.getLogger("srum_core")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LowercaseLevelFormatter("%(levelname)s: %(message)s"))
    saved = (project.level, project.propagate)
    project.addHandler(handler)
    project.setLevel(level)
    project.propagate = False
    try:
        return int(args.handler(args) or 0)
    except CliError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        _shut_down_process_group()
        project.removeHandler(handler)
        project.setLevel(saved[0])
        project.propagate = saved[1]


def _shut_down_process_group() -> None:
    """Leave a multi-process launch cleanly: a process group still alive at interpreter exit can abort the
    process ("terminate called without an active exception") while its gloo threads are torn down."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


class _LowercaseLevelFormatter(logging.Formatter):
    """``warning: message`` rather than ``WARNING: message``: the CLI's messages read like its ``error:`` lines."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace(record.levelname, record.levelname.lower(), 1)
