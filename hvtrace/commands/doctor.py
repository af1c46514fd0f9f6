"""`hvtrace doctor`: the parser of the host check (the checks are :mod:`hvtrace.doctor`)."""

from __future__ import annotations

import argparse

from hvtrace.commands.parser import Subcommands
from hvtrace.doctor import run_doctor


def register(sub: Subcommands) -> None:
    doctor = sub.add_parser(
        "doctor", help="check this host: emulators, KVM, gdb, toolchain; say what to install"
    )
    doctor.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    return run_doctor()
