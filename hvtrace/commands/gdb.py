"""`hvtrace gdb` (gdb on a live gdbstub or a core) and `hvtrace core-from-dump` (raw RAM dumps as a core)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hvtrace.commands import values
from hvtrace.commands.parser import Subcommands, out
from hvtrace.elfcore import dump_segments, write_core
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.gdb_launch import run_gdb
from hvtrace.trace.output import check_output


def register(sub: Subcommands) -> None:
    g = sub.add_parser(
        "gdb",
        help="gdb with the hypervisor's symbols and the hv-* commands (live gdbstub or core file)",
        description="Start gdb on hv/build/hvtrace.elf with the hv-* commands loaded (help hv), "
        "connected to a running session's gdbstub (--port, printed by `hvtrace run` as 'hvtrace: gdb "
        "port N'; or --ram PATH of that session) or a post-mortem core (--core FILE, --dump PREFIX).",
    )
    g.add_argument("--port", type=values.tcp_port("--port"), metavar="N", help="gdbstub port on 127.0.0.1")
    g.add_argument("--ram", type=Path, metavar="PATH", help="RAM file of a running session")
    g.add_argument("--core", type=Path, metavar="FILE", help="ELF core file (post mortem)")
    g.add_argument("--dump", type=Path, metavar="PREFIX", help="raw RAM dump PREFIX.<hex start>")
    g.add_argument("--elf", type=Path, metavar="FILE", help="hypervisor image (symbols)")
    g.add_argument("--ex", action="append", default=[], metavar="CMD", help="run a gdb command (repeatable)")
    g.add_argument("--batch", action="store_true", help="exit after the --ex commands")
    g.set_defaults(func=cmd_gdb)

    c = sub.add_parser(
        "core-from-dump",
        help="wrap raw RAM dump files (PREFIX.<hex start>) as an ELF core for gdb",
    )
    c.add_argument("prefix", type=Path, metavar="PREFIX")
    c.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="core file to write")
    c.set_defaults(func=cmd_core_from_dump)


def cmd_gdb(args: argparse.Namespace) -> int:
    return run_gdb(args.port, args.ram, args.core, args.dump, args.elf, commands=args.ex, batch=args.batch)


def cmd_core_from_dump(args: argparse.Namespace) -> int:
    check_output(args.output)
    segs = dump_segments(args.prefix)
    if not segs:
        raise LaunchError(ExitCode.USAGE, f"no dump files {args.prefix}.<start hex>")
    write_core(segs, args.output)
    out(f"wrote {args.output}: {len(segs)} segments ({', '.join(hex(a) for a, _ in segs)})")
    return 0
