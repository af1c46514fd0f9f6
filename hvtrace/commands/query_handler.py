"""What `hvtrace query` does (its parser: :mod:`hvtrace.commands.query`)."""

from __future__ import annotations

import argparse

from hvtrace.commands.report_handler import warn_damage
from hvtrace.trace.query import query, write_result
from hvtrace.trace.tracefile import TraceFile


def cmd_query(args: argparse.Namespace) -> int:
    files = [TraceFile.open(p) for p in args.files]
    con, cur = query(files, args.sql)
    try:
        write_result(cur, args.format, max_rows=args.max_rows)
    finally:
        con.close()
    codes = [warn_damage(tf) for tf in files]
    return max(codes)
