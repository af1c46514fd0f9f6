"""`hvtrace tui`: the parser of the terminal UI; the UI itself (hvtrace.tui, installed from tui/) is
imported only when the command runs: it sits above this package, and Textual loads slowly."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from hvtrace.commands import values
from hvtrace.commands.parser import Subcommands, add_command
from hvtrace.commands.session_options import add_session_source_arguments, check_session_source
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.errors import TraceError


def register(sub: Subcommands) -> None:
    t = add_command(sub, "tui", cmd_tui)
    t.add_argument("--replay", type=Path, metavar="FILE", help="trace file to replay")
    add_session_source_arguments(t)
    values.add_seconds_argument(t, "--timeout", "stop a started session after", default=3600.0)
    values.add_symbols_argument(t)
    t.add_argument("--log-size", type=values.positive_int, default=1 << 20, metavar="N", help="records kept")


def check_replay_file(path: Path) -> None:
    """A replay file that cannot be read is an error before the app starts (the app would only show
    "loading"): missing or unreadable 66, a directory 65, as `report` says."""
    if path.is_dir():
        raise TraceError(ExitCode.BAD_DATA, f"{path} is a directory, not a trace file")
    try:
        with path.open("rb"):
            pass
    except FileNotFoundError:
        raise TraceError(ExitCode.NO_INPUT, f"trace file {path} does not exist") from None
    except OSError as e:
        raise TraceError(ExitCode.NO_INPUT, f"cannot read trace file {path}: {e.strerror}") from None


def cmd_tui(args: argparse.Namespace) -> int:
    check_session_source(args, source_required=False)
    if args.replay is not None:
        check_replay_file(args.replay)
    tui_main = importlib.import_module("hvtrace.tui.main")
    code: int = tui_main.run(args)
    return code
