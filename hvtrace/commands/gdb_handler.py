"""What `hvtrace gdb` and `hvtrace core-from-dump` do (their parsers: :mod:`hvtrace.commands.gdb`)."""

from __future__ import annotations

import argparse

from hvtrace.commands.parser import out
from hvtrace.elfcore import dump_segments, write_core
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.gdb_launch import run_gdb
from hvtrace.trace.output import check_output


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
