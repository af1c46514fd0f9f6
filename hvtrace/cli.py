"""`hvtrace` command line: the top parser and the dispatch; each subcommand module owns its parser and
its handler (``register(sub)`` with ``set_defaults(func=...)``, see :mod:`hvtrace.commands`)."""

from __future__ import annotations

import argparse
import sys

from hvtrace import __version__
from hvtrace.commands import doctor, gdb, query, run, tui
from hvtrace.commands.parser import HvArgumentParser, UsageError, err, exit_code_lines
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.trace import cli as trace_cli
from hvtrace.trace.errors import TraceError


def build_parser() -> HvArgumentParser:
    parser = HvArgumentParser(
        prog="hvtrace",
        description="GDB-integrated tracing hypervisor: boot it, trace it, inspect it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"exit codes of `hvtrace run`:\n    0..63  the hypervisor's status code (or a guest's exit "
        f"code)\n{exit_code_lines()}",
    )
    parser.add_argument("--version", action="version", version=f"hvtrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (run, doctor, trace_cli, query, gdb, tui):  # the order of `hvtrace --help`
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        err("usage error: no command given (choose run, doctor, capture, report, export, query or gdb)")
        return ExitCode.USAGE
    try:
        code: int = args.func(args)
    except UsageError as e:
        err(f"usage error: {e.message}")
        return e.code
    except (LaunchError, TraceError) as e:
        err(f"error: {e.message}")
        return e.code
    return code
