"""What `hvtrace doctor` does (its parser: :mod:`hvtrace.commands.doctor`): the host checks."""

from __future__ import annotations

import argparse

from hvtrace.doctor import run_doctor


def cmd_doctor(args: argparse.Namespace) -> int:
    return run_doctor()
