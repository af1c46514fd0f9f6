"""`hvtrace gdb` (gdb on a live gdbstub or a core) and `hvtrace core-from-dump` (raw RAM dumps as a core):
their options; what they do is :mod:`hvtrace.commands.gdb_handler`, imported when one of them runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hvtrace.commands import values
from hvtrace.commands.parser import Subcommands, add_command

HANDLERS = "hvtrace.commands.gdb_handler"


def register(sub: Subcommands) -> None:
    g = add_command(sub, "gdb", f"{HANDLERS}:cmd_gdb")
    g.add_argument("--port", type=values.tcp_port("--port"), metavar="N", help="gdbstub port on 127.0.0.1")
    g.add_argument("--ram", type=Path, metavar="PATH", help="RAM file of a running session")
    g.add_argument("--core", type=Path, metavar="FILE", help="ELF core file (post mortem)")
    g.add_argument("--dump", type=Path, metavar="PREFIX", help="raw RAM dump PREFIX.<hex start>")
    g.add_argument("--elf", type=Path, metavar="FILE", help="hypervisor image (symbols)")
    declare_gdb_options(g)

    c = add_command(sub, "core-from-dump", f"{HANDLERS}:cmd_core_from_dump")
    c.add_argument("prefix", type=Path, metavar="PREFIX")
    c.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="core file to write")


class _GdbOption(argparse.Action):
    """Collect one of gdb's own options, in command-line order (gdb runs -ex and -x in that order)."""

    def __call__(
        self, parser: argparse.ArgumentParser, ns: argparse.Namespace, value: Any, opt: str | None = None
    ) -> None:
        given = [self.const] if self.nargs == 0 else [self.const, value]
        ns.gdb_options = [*ns.gdb_options, *given]  # a new list: the default one is shared


#: gdb's options passed through as gdb spells them (one or two dashes), with the spelling gdb gets.
GDB_OPTIONS: tuple[tuple[tuple[str, ...], str, str | None, str], ...] = (
    (("-ex", "--ex", "-eval-command", "--eval-command"), "-ex", "CMD", "run a gdb command (repeatable)"),
    (("-x", "--x", "-command", "--command"), "-x", "FILE", "run gdb commands from FILE (repeatable)"),
    (("-iex", "--iex"), "-iex", "CMD", "run a gdb command before loading the inferior"),
    (("-ix", "--ix"), "-ix", "FILE", "run gdb commands from FILE before loading the inferior"),
    (("-batch", "--batch"), "-batch", None, "exit after the commands, with the status of the last one"),
    (("-nx", "--nx", "-n"), "-nx", None, "do not read .gdbinit files (gdb's own init files load by default)"),
    (("-q", "-quiet", "--quiet", "-silent", "--silent"), "-q", None, "no banner (hvtrace always passes -q)"),
)


def declare_gdb_options(g: argparse.ArgumentParser) -> None:
    g.set_defaults(gdb_options=[])
    for names, spelling, metavar, text in GDB_OPTIONS:
        nargs = None if metavar else 0
        g.add_argument(*names, action=_GdbOption, const=spelling, nargs=nargs, metavar=metavar, help=text)
    g.add_argument(
        "gdb_rest",
        nargs="*",
        metavar="-- GDB-OPTION",
        help="anything after -- goes to gdb as it is (e.g. -- -iex 'set pagination off')",
    )
