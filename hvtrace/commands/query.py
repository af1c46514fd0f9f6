"""`hvtrace query "SELECT ..." FILE...`: SQL (DuckDB) over trace files, as the table ``exits``. The
parser; the handler (:mod:`hvtrace.commands.query_handler`) is imported when the command runs."""

from __future__ import annotations

from pathlib import Path

from hvtrace.commands import values
from hvtrace.commands.parser import Subcommands, add_command

FORMATS = ("table", "csv", "json")


def register(sub: Subcommands) -> None:
    q = add_command(sub, "query", "hvtrace.commands.query_handler:cmd_query")
    q.add_argument("sql", metavar="SQL", help='one statement, e.g. "SELECT count(*) FROM exits"')
    q.add_argument("files", nargs="+", type=Path, metavar="FILE", help="trace files")
    q.add_argument("--format", choices=FORMATS, default="table", help="output (default: an aligned table)")
    q.add_argument(
        "--max-rows", type=values.positive_int, default=10_000, metavar="N",
        help="rows the table shows (the rest are counted; csv and json print all)",
    )  # fmt: skip
