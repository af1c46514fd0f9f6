"""`hvtrace doctor`: the parser of the host check (the checks are :mod:`hvtrace.doctor`)."""

from __future__ import annotations

import argparse

from hvtrace.commands.parser import Subcommands, add_command
from hvtrace.doctor import run_doctor


def register(sub: Subcommands) -> None:
    add_command(sub, "doctor", cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    return run_doctor()
