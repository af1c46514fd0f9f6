"""`hvtrace gdb` (gdb on a live gdbstub or a core) and `hvtrace core-from-dump` (raw RAM dumps as a core)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hvtrace.commands import values
from hvtrace.commands.parser import Subcommands, add_command, out
from hvtrace.elfcore import dump_segments, write_core
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.gdb_launch import run_gdb
from hvtrace.trace.output import check_output


def register(sub: Subcommands) -> None:
    g = add_command(sub, "gdb", cmd_gdb)
    g.add_argument("--port", type=values.tcp_port("--port"), metavar="N", help="gdbstub port on 127.0.0.1")
    g.add_argument("--ram", type=Path, metavar="PATH", help="RAM file of a running session")
    g.add_argument("--core", type=Path, metavar="FILE", help="ELF core file (post mortem)")
    g.add_argument("--dump", type=Path, metavar="PREFIX", help="raw RAM dump PREFIX.<hex start>")
    g.add_argument("--elf", type=Path, metavar="FILE", help="hypervisor image (symbols)")
    declare_gdb_options(g)

    c = add_command(sub, "core-from-dump", cmd_core_from_dump)
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


def cmd_gdb(args: argparse.Namespace) -> int:
    options = [*args.gdb_options, *args.gdb_rest]
    return run_gdb(args.port, args.ram, args.core, args.dump, args.elf, options=options)


def cmd_core_from_dump(args: argparse.Namespace) -> int:
    check_output(args.output)
    segs = dump_segments(args.prefix)
    if not segs:
        raise LaunchError(ExitCode.USAGE, f"no dump files {args.prefix}.<start hex>")
    write_core(segs, args.output)
    out(f"wrote {args.output}: {len(segs)} segments ({', '.join(hex(a) for a, _ in segs)})")
    return 0
