"""`hvtrace` command line: the top parser and the dispatch; each subcommand module owns its parser and
names its handler (``register(sub)`` with ``set_defaults(func=...)``; handlers with heavy imports are
imported when their command runs, see :mod:`hvtrace.commands`)."""

from __future__ import annotations

import argparse
import sys

from hvtrace import __version__
from hvtrace.commands import doctor, gdb, image, query, run, top, tui
from hvtrace.commands.exit_tables import overall_epilog
from hvtrace.commands.parser import HvArgumentParser, UsageError, err
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.trace import cli as trace_cli
from hvtrace.trace.errors import TraceError


def build_parser() -> HvArgumentParser:
    parser = HvArgumentParser(
        prog="hvtrace",
        description="GDB-integrated tracing hypervisor: boot it, trace it, inspect it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=overall_epilog(),
    )
    parser.add_argument("--version", action="version", version=f"hvtrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (run, doctor, trace_cli, query, gdb, tui, top, image):  # the order of `hvtrace --help`
        module.register(sub)  # each adds its parsers with commands.parser.add_command
    return parser


def command_names(parser: argparse.ArgumentParser) -> list[str]:
    """Every subcommand, in the order of `hvtrace --help`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        err(f"usage error: no command given (choose {', '.join(command_names(parser))})")
        return ExitCode.USAGE
    try:
        code: int = args.func(args)
    except UsageError as e:
        err(f"usage error: {e.message}")
        return e.code
    except (LaunchError, TraceError) as e:
        err(f"error: {e.message}")
        return e.code
    except KeyboardInterrupt:  # a command without its own signal handling: one line, no traceback
        err("interrupted by SIGINT")
        return ExitCode.SIGINT
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as e:
        err(f"error: {e}")
        return ExitCode.NO_INPUT
    except OSError as e:
        err(f"error: {e}")
        return ExitCode.IO_ERROR
    return code
