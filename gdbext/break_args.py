"""hv-break's words and options, and the break-table entry they describe (pure: unit-tested).

``hv-break REASON [--cpu N] [--msr X | --cr N | --port P | --leaf L] [--gpa A-B] [--ignore N] [--trace]
[if EXPR]``, ``hv-break list``, ``hv-break delete N|all``: the first word chooses; the options belong to
the REASON form; the words after ``if`` are the condition (break_condition.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from hvtrace import abi
from hvtrace.abi import HvBreak

from .break_condition import compile_condition, describe_condition, set_condition
from .model import HvError, describe_break, parse_range, parse_reason
from .options import OptionParser, number

#: The options that match the exit's first argument (one of them at a time) and what each one names.
ARG0_OPTIONS = {"--msr": "MSR", "--cr": "CR number", "--port": "PORT", "--leaf": "LEAF"}


class _Arg0(argparse.Action):
    """--msr/--cr/--port/--leaf all set the one arg0 match: a second one is an error naming both."""

    def __call__(
        self, parser: argparse.ArgumentParser, ns: argparse.Namespace, value: Any, opt: str | None = None
    ) -> None:
        if ns.arg0 is not None:
            raise HvError(f"{opt} and {ns.arg0[0]} both set the exit's argument: choose one")
        ns.arg0 = (opt, value)


def declare(p: OptionParser) -> None:
    p.add_argument("words", nargs="*")
    p.add_argument("--cpu", type=number("CPU"))
    for opt, what in ARG0_OPTIONS.items():
        p.add_argument(opt, dest="arg0", type=number(what), action=_Arg0)
    p.add_argument("--gpa", type=lambda text: parse_range(text, "guest-physical range"))
    p.add_argument("--ignore", type=number("ignore count"), default=0)
    p.add_argument("--trace", action="store_true")


def entry(vendor: int, cpu_count: int, args: argparse.Namespace) -> HvBreak:
    """The enabled break-table entry of ``hv-break REASON [options]`` (``args.words`` is [REASON])."""
    words = list(args.words)
    condition = words[words.index("if") + 1 :] if "if" in words else None
    words = words[: words.index("if")] if "if" in words else words
    if not words:
        raise HvError("which exit? e.g. hv-break cpuid --leaf 1 (see help hv-break)")
    if len(words) > 1:
        raise HvError(f"one exit reason at a time (got {' '.join(words)!r}; a condition follows 'if')")
    b = HvBreak()
    b.enabled = 1
    b.kind, b.reason = parse_reason(vendor, words[0])
    b.cpu = abi.HV_BRK_ANY
    if args.cpu is not None:
        if args.cpu >= cpu_count:
            raise HvError(f"no CPU {args.cpu} (this target has {cpu_count} CPUs)")
        b.cpu = args.cpu
    if args.arg0 is not None:
        b.arg0 = args.arg0[1]
        b.flags |= abi.HV_BRK_MATCH_ARG0
    if args.gpa is not None:
        b.gpa_lo, b.gpa_hi = args.gpa
        b.flags |= abi.HV_BRK_MATCH_GPA
    if condition is not None:
        set_condition(b, compile_condition(condition))
    b.ignore = args.ignore
    if args.trace:
        b.flags |= abi.HV_BRK_TRACE
    return b


def build_break(vendor: int, cpu_count: int, argv: Sequence[str]) -> HvBreak:
    """``hv-break REASON [options]`` from its words (the parse and the entry, as the command does)."""
    p = OptionParser("hv-break")
    declare(p)
    return entry(vendor, cpu_count, p.parse(argv))


def describe(vendor: int, b: HvBreak) -> str:
    """What an entry matches, as hv-break list shows it: ``cpuid arg0=0x1 if rbx == 0x68747541``."""
    condition = describe_condition(b)
    return f"{describe_break(vendor, b)} if {condition}" if condition else describe_break(vendor, b)
