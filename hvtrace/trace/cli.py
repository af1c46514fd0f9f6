"""The `capture`, `report` and `export` subcommands' parsers. Their handlers are in
:mod:`hvtrace.commands.trace_handlers` (report: :mod:`hvtrace.commands.report_handler`), imported only
when one of them runs (numpy, pyarrow, the
exporters and the symbol readers take most of a second to load: `hvtrace --help` needs none of them)."""

from __future__ import annotations

from pathlib import Path

from hvtrace.commands import values
from hvtrace.commands.parser import Subcommands, add_command
from hvtrace.commands.session_options import add_session_source_arguments
from hvtrace.trace import report_args
from hvtrace.trace.export_formats import FORMATS, PERFETTO_JSON_MAX

HANDLERS = "hvtrace.commands.trace_handlers"


def register(sub: Subcommands) -> None:
    cap = add_command(sub, "capture", f"{HANDLERS}:cmd_capture")
    cap.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="trace file to write")
    add_session_source_arguments(cap)
    values.add_seconds_argument(cap, "--duration", "stop after this long")
    cap.add_argument("--count", type=values.positive_int, metavar="N", help="stop after N records")
    cap.add_argument("--until-reason", metavar="NAME", help="stop after the first such exit")
    cap.add_argument("--cpu", type=values.nonneg_int, action="append", metavar="N", help="keep CPU N")
    cap.add_argument("--reason", action="append", metavar="NAME", help="keep this reason")
    cap.add_argument("--no-lossless", action="store_true", help="never write ring tails (passive reader)")
    cap.add_argument("--quiet", action="store_true", help="no progress line")

    rep = add_command(sub, "report", "hvtrace.commands.report_handler:cmd_report")
    rep.add_argument("file", type=Path, metavar="FILE")
    rep.add_argument("--json", action="store_true", help="machine-readable output")
    rep.add_argument("--cpu", type=report_args.cpu_list, metavar="N[,N]", help="only these CPUs")
    rep.add_argument(
        "--reason", action="append", metavar="NAME[,NAME]", help="only these reasons (kind or native names)"
    )
    for opt, what in (("--since", "from"), ("--until", "before")):
        rep.add_argument(
            opt, type=report_args.bound, metavar="POS",
            help=f"only records {what} POS: seconds after the first record (1.5s) or a record number in "
            "time order (1000r)",
        )  # fmt: skip
    rep.add_argument(
        "--top", type=values.positive_int, metavar="N", help="only the first N rows of each table"
    )
    rep.add_argument(
        "--sort", choices=("count", "time"), default="count", help="order by count or by handling time"
    )
    rep.add_argument(
        "--jobs", type=values.positive_int, metavar="N", help="processes to read with (default: idle CPUs)"
    )
    rep.add_argument(
        "--no-summaries", action="store_true",
        help="decode every chunk's records instead of using the per-chunk summaries of chunks selected "
        "whole (format 3 files; the same report, slower: for checking)",
    )  # fmt: skip
    values.add_symbols_argument(rep)

    exp = add_command(sub, "export", f"{HANDLERS}:cmd_export", perfetto_json_max=PERFETTO_JSON_MAX)
    exp.add_argument("files", nargs="+", type=Path, metavar="FILE", help="trace file (parquet: one or more)")
    exp.add_argument(
        "--format",
        choices=FORMATS,
        required=True,
        help="perfetto (protobuf for big traces, else JSON), perfetto-proto, perfetto-json, csv, parquet",
    )
    exp.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="parquet: a directory")
    values.add_symbols_argument(exp)
