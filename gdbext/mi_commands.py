"""gdb/MI twins of hv-break for programs (the TUI's break controller): structured MI results built from
the same steps as the CLI command (cmd_break's arm / table / delete / hit), never text to parse.

  -hv-break-insert REASON [--cpu N] [--msr X | --cr N | --port P | --leaf L] [--gpa A-B]
                   [--ignore N] [--trace] [if EXPR]
      ^done,break={number="0",what="CPUID(0x72) leaf 0x1",breakpoint="1"}
  -hv-break-list
      ^done,armed="1",breaks=[{number="0",what="...",hits="3"}]
  -hv-break-delete N|all
      ^done,deleted="1",armed="0"
  -hv-exit-info          (stopped at hv_break_hit)
      ^done,hit={number="0",cpu="1",reason="CPUID",lines=["...", ...]}

Errors are MI errors (^error,msg="-hv-break-insert: ...") with hv-break's own wording.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gdb

from . import break_args, cmd_break, target
from .model import HvError
from .options import OptionParser


class HvMiCommand(gdb.MICommand):  # type: ignore[misc]
    """An MI command answering ``run(argv)`` (a dict: the result's fields) in physical-memory mode."""

    def __init__(self, name: str, run: Callable[[list[str]], dict[str, Any]]) -> None:
        super().__init__(name)
        self.label = name
        self.run = run

    def invoke(self, argv: list[str]) -> dict[str, Any]:
        try:
            with target.physical():
                return self.run(list(argv))
        except HvError as e:
            raise gdb.GdbError(f"{self.label}: {e}") from None


def _insert(argv: list[str]) -> dict[str, Any]:
    parser = OptionParser("-hv-break-insert")
    break_args.declare(parser)
    index, what, bp = cmd_break.arm(parser.parse(argv))
    return {"break": {"number": index, "what": what, "breakpoint": bp}}


def _list(argv: list[str]) -> dict[str, Any]:
    if argv:
        raise HvError("takes no arguments")
    cfg, entries = cmd_break.table()
    return {"armed": cfg.armed, "breaks": [{"number": i, "what": w, "hits": h} for i, w, h in entries]}


def _delete(argv: list[str]) -> dict[str, Any]:
    if len(argv) != 1:
        raise HvError("usage: -hv-break-delete N|all")
    deleted, armed = cmd_break.delete(argv[0])
    return {"deleted": deleted, "armed": armed}


def _exit_info(argv: list[str]) -> dict[str, Any]:
    if argv:
        raise HvError("takes no arguments")
    try:
        at = gdb.selected_frame().name()
    except gdb.error:
        at = None
    if at != cmd_break.HIT_FUNCTION:
        raise HvError(f"not stopped at {cmd_break.HIT_FUNCTION} (an exit break's hit)")
    entry, cpu, reason, lines = cmd_break.hit()
    return {"hit": {"number": entry, "cpu": cpu, "reason": reason, "lines": lines}}


MI_COMMANDS: dict[str, Callable[[list[str]], dict[str, Any]]] = {
    "-hv-break-insert": _insert,
    "-hv-break-list": _list,
    "-hv-break-delete": _delete,
    "-hv-exit-info": _exit_info,
}


def register() -> None:
    if not hasattr(gdb, "MICommand"):  # gdb < 13: the CLI commands only
        return
    for name, run in MI_COMMANDS.items():
        HvMiCommand(name, run)
