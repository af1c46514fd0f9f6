"""What every subcommand prints through and is parsed by: the `hvtrace:` lines, the usage-error parser."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn, TypeAlias

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
