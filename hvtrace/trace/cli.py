"""The `capture`, `report` and `export` subcommands: their parsers and handlers, over the trace API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hvtrace.commands import values
from hvtrace.commands.parser import Subcommands, err, out
from hvtrace.commands.session_options import add_session_source_arguments, check_session_source
from hvtrace.exitcodes import ExitCode
from hvtrace.interrupts import Interrupted, raise_on_signals
from hvtrace.launch.guest import launch_options
from hvtrace.trace.capture import Capture
from hvtrace.trace.export import export
from hvtrace.trace.filters import Filter
from hvtrace.trace.output import check_output
from hvtrace.trace.report import build_report, format_text
from hvtrace.trace.tracefile import TraceFile


def register(sub: Subcommands) -> None:
    cap = sub.add_parser(
        "capture",
        help="capture exit records to a trace file (attach to a run, or start one)",
        description="Attach to a running `hvtrace run` (--ram PATH, printed as 'hvtrace: ram file PATH') "
        "or boot one (--backend), and write its exit records to a trace file.",
    )
    cap.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="trace file to write")
    add_session_source_arguments(cap)
    cap.add_argument("--duration", type=values.seconds, metavar="SECONDS", help="stop after this long")
    cap.add_argument("--count", type=values.positive_int, metavar="N", help="stop after N records")
    cap.add_argument("--until-reason", metavar="NAME", help="stop after the first such exit")
    cap.add_argument("--cpu", type=values.nonneg_int, action="append", metavar="N", help="keep CPU N")
    cap.add_argument("--reason", action="append", metavar="NAME", help="keep this reason")
    cap.add_argument("--no-lossless", action="store_true", help="never write ring tails (passive reader)")
    cap.add_argument("--quiet", action="store_true", help="no progress line")
    cap.set_defaults(func=cmd_capture)

    rep = sub.add_parser("report", help="per-reason / per-CPU statistics of a trace file")
    rep.add_argument("file", type=Path, metavar="FILE")
    rep.add_argument("--json", action="store_true", help="machine-readable output")
    rep.set_defaults(func=cmd_report)

    exp = sub.add_parser("export", help="export a trace file to Perfetto (Chrome JSON), CSV or Parquet")
    exp.add_argument("file", type=Path, metavar="FILE")
    exp.add_argument(
        "--format",
        choices=("perfetto", "csv", "parquet"),
        required=True,
        help="perfetto: Chrome JSON for ui.perfetto.dev (one track per CPU); csv; parquet",
    )
    exp.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="file to write")
    exp.set_defaults(func=cmd_export)


def _progress(line: str) -> None:
    # Rewrite one line in place on a terminal; a pipe or log file gets one plain line per update.
    if sys.stderr.isatty():
        print(f"\r{line}   ", end="", file=sys.stderr, flush=True)
    else:
        print(line, file=sys.stderr, flush=True)


def cmd_capture(args: argparse.Namespace) -> int:
    check_session_source(args, source_required=True)
    ram = (args.ram,) if args.ram is not None else ()
    check_output(args.output, inputs=ram)  # before an emulator boots or a RAM file is attached
    stop = [x for x in (args.duration, args.count, args.until_reason) if x is not None]
    if args.ram is not None and not stop:
        err("note: no --duration/--count/--until-reason: capturing until the session ends or Ctrl-C")
    filt = Filter(cpus=set(args.cpu) if args.cpu else None, reasons=args.reason)
    with raise_on_signals():
        try:
            if args.ram is not None:
                cap = Capture.attach(ram=args.ram, lossless=not args.no_lossless)
            else:
                opts = launch_options(args)  # --guest/--initrd/--append/--hv-append/--memory
                cap = Capture.start(
                    backend=args.backend,
                    lossless=not args.no_lossless,
                    on_info=out,
                    **opts.session_args(),
                )
            with cap:
                try:
                    summary = cap.record(
                        args.output,
                        count=args.count,
                        duration=args.duration,
                        until_reason=args.until_reason,
                        filt=filt,
                        progress=None if args.quiet else _progress,
                    )
                except Interrupted:
                    summary = {
                        "records": cap.progress.records,
                        "stop": "interrupted",
                        "lost_total": cap.progress.lost,
                    }
        except Interrupted as e:
            if not args.quiet:
                print(file=sys.stderr)
            err(f"interrupted by {e} before the capture started")
            return e.exit_code
    if not args.quiet and sys.stderr.isatty():
        print(file=sys.stderr)
    lost = summary["lost_total"]
    print(
        f"hvtrace: wrote {summary['records']} records to {args.output} (stopped: {summary['stop']}; "
        f"lost {lost}{'' if lost else ': lossless'})",
        flush=True,
    )
    return 0


def warn_damage(tf: TraceFile) -> int:
    """The one line a damaged file gets from every command (report, export, tui --replay) and its exit
    code: ExitCode.DAMAGED when chunks were skipped or the index was rebuilt, else 0. A file cut short
    by a killed capture is not damage: its complete chunks are all there is (a note says so)."""
    if tf.truncated_at is not None:
        err(f"note: {tf.path}: ends inside a chunk at offset {tf.truncated_at} (capture killed?); "
            "the chunks before it were read")  # fmt: skip
    warning = tf.damage_warning()
    if warning is None:
        return 0
    err(f"warning: {warning}")
    return ExitCode.DAMAGED


def cmd_report(args: argparse.Namespace) -> int:
    tf = TraceFile.open(args.file)
    rep = build_report(tf)
    if args.json:
        print(json.dumps(rep, indent=1, default=str))
    else:
        print(format_text(rep))
    return warn_damage(tf)


def cmd_export(args: argparse.Namespace) -> int:
    check_output(args.output, inputs=(args.file,))  # before the input is read
    tf = TraceFile.open(args.file)
    n = export(tf, args.format, args.output)
    lost = tf.lost_total()
    print(
        f"hvtrace: exported {n} records to {args.output} ({args.format})"
        + (f"; {lost} records lost" if lost else ""),
        flush=True,
    )
    return warn_damage(tf)
