"""`hvtrace query "SELECT ..." FILE...`: SQL (DuckDB) over trace files, as the table ``exits``."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from hvtrace.commands import values
from hvtrace.commands.parser import Subcommands, add_command
from hvtrace.trace.cli import warn_damage
from hvtrace.trace.tracefile import TraceFile

FORMATS = ("table", "csv", "json")


def register(sub: Subcommands) -> None:
    q = add_command(sub, "query", cmd_query)
    q.add_argument("sql", metavar="SQL", help='one statement, e.g. "SELECT count(*) FROM exits"')
    q.add_argument("files", nargs="+", type=Path, metavar="FILE", help="trace files")
    q.add_argument("--format", choices=FORMATS, default="table", help="output (default: an aligned table)")
    q.add_argument(
        "--max-rows", type=values.positive_int, default=10_000, metavar="N",
        help="rows the table shows (the rest are counted; csv and json print all)",
    )  # fmt: skip


def cmd_query(args: argparse.Namespace) -> int:
    query = importlib.import_module("hvtrace.trace.query")  # DuckDB loads only when a query runs
    files = [TraceFile.open(p) for p in args.files]
    con, cur = query.query(files, args.sql)
    try:
        query.write_result(cur, args.format, max_rows=args.max_rows)
    finally:
        con.close()
    codes = [warn_damage(tf) for tf in files]
    return max(codes)
