"""`hvtrace top`: a kvm_stat-style text view of a session's exits per CPU and per reason, for scripts
and logs (``--once``, ``--log``), on a running `hvtrace run` (``--ram``) or a session it starts."""

from __future__ import annotations

from hvtrace.commands import values
from hvtrace.commands.parser import Subcommands, add_command
from hvtrace.commands.session_options import add_session_source_arguments


def register(sub: Subcommands) -> None:
    t = add_command(sub, "top", "hvtrace.commands.top_handler:cmd_top")
    add_session_source_arguments(t)
    values.add_seconds_argument(t, "--interval", "length of one interval (default 1)", default=1.0)
    t.add_argument("--once", action="store_true", help="print one interval and exit")
    t.add_argument("--log", action="store_true", help="one line per interval (for logs), no table")
