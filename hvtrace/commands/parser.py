"""What every subcommand prints through and is parsed by: the `hvtrace:` lines, the usage-error parser,
and :func:`add_command`, the one way a subcommand module adds its parser."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import NoReturn, TypeAlias

from hvtrace.commands.command_texts import DESCRIPTIONS, SUMMARIES
from hvtrace.commands.exit_tables import command_epilog
from hvtrace.exitcodes import ExitCode, LaunchError


def err(message: str) -> None:
    print(f"hvtrace: {message}", file=sys.stderr, flush=True)


def out(message: str) -> None:
    print(f"hvtrace: {message}", flush=True)


class HvArgumentParser(argparse.ArgumentParser):
    """argparse with one-line usage errors and exit code 64 (EX_USAGE) instead of 2."""

    def error(self, message: str) -> NoReturn:
        err(f"usage error: {message} (see '{self.prog} --help')")
        raise SystemExit(ExitCode.USAGE)


#: What ``register(sub)`` of every subcommand module adds its parsers to.
Subcommands: TypeAlias = "argparse._SubParsersAction[HvArgumentParser]"


class UsageError(LaunchError):
    """Options that exclude each other, found after parsing: printed as a usage error, exit 64."""

    def __init__(self, message: str) -> None:
        super().__init__(ExitCode.USAGE, message)


#: What a subcommand runs: :func:`hvtrace.cli.main` calls it with the options and exits with what it returns.
Handler: TypeAlias = Callable[[argparse.Namespace], int]


def imported_when_run(spec: str) -> Handler:
    """The handler ``"module:function"``, imported when the command runs: building the parser (every
    command's, for any command) then loads none of the heavy modules the handlers need."""
    module, function = spec.split(":")

    def handler(args: argparse.Namespace) -> int:
        run: Handler = getattr(importlib.import_module(module), function)
        return run(args)

    handler.__name__ = handler.__qualname__ = function  # names the handler it stands for
    return handler


def add_command(sub: Subcommands, name: str, handler: Handler | str, **fields: object) -> HvArgumentParser:
    """Add subcommand ``name``: its line in `hvtrace --help` and its description (from
    :mod:`hvtrace.commands.command_texts`, ``{field}`` filled in from ``fields``), its exit codes as the
    epilog of its --help (:mod:`hvtrace.commands.exit_tables`) and the ``handler`` main calls (a
    ``"module:function"`` string: imported when the command runs)."""
    if isinstance(handler, str):
        handler = imported_when_run(handler)
    description = DESCRIPTIONS.get(name)
    parser = sub.add_parser(
        name,
        help=SUMMARIES[name],
        description=description.format(**fields) if description and fields else description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=command_epilog(name),
    )
    parser.set_defaults(func=handler)
    return parser
