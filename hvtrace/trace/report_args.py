"""The argparse types of `hvtrace report`'s --cpu and --since/--until: parsed before anything heavy is
imported (the report itself, numpy, reads the file only when the command runs)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

_BOUND = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([sr])\s*$")


@dataclass(frozen=True)
class Bound:
    value: float
    unit: str  # "s" or "r"

    def __str__(self) -> str:
        return f"{self.value:g}{self.unit}"


def bound(text: str) -> Bound:
    """argparse type of --since/--until: ``1.5s`` or ``1000r``."""
    m = _BOUND.match(text)
    if not m or (m[2] == "r" and not float(m[1]).is_integer()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a position: seconds from the first record (1.5s) or a record number (1000r)"
        )
    return Bound(float(m[1]), m[2])


def cpu_list(text: str) -> set[int]:
    """argparse type of --cpu: ``N[,N...]``."""
    try:
        cpus = {int(x, 0) for x in text.split(",")}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--cpu takes CPU numbers separated by commas (got {text!r})"
        ) from None
    if min(cpus) < 0:
        raise argparse.ArgumentTypeError(f"CPU numbers are not negative (got {text!r})")
    return cpus
