"""What `hvtrace capture`, `report` and `export` do (their parsers: :mod:`hvtrace.trace.cli`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hvtrace.commands.parser import UsageError, err, out
from hvtrace.commands.report_handler import warn_damage
from hvtrace.commands.session_options import check_session_source
from hvtrace.interrupts import Interrupted, raise_on_signals
from hvtrace.kaslr import apply_slide
from hvtrace.launch.guest import launch_options
from hvtrace.symbols import load_symbols, symbolizer
from hvtrace.trace.capture import Capture
from hvtrace.trace.exit_batches import Symbolize
from hvtrace.trace.export import export, perfetto_kind
from hvtrace.trace.export_parquet import check_output_dir
from hvtrace.trace.filters import Filter
from hvtrace.trace.output import check_output
from hvtrace.trace.tracefile import TraceFile


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
                    gdb_port=args.gdb,
                    gdb_stub=args.gdb_stub,
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
                        **{f"lost_{k}": v for k, v in cap.lost_where().items()},
                    }
        except Interrupted as e:
            if not args.quiet:
                print(file=sys.stderr)
            err(f"interrupted by {e} before the capture started")
            return e.exit_code
    if not args.quiet and sys.stderr.isatty():
        print(file=sys.stderr)
    lost = summary["lost_total"]
    where = ""
    if lost and "lost_unread" in summary:
        where = (
            f": {summary['lost_unread']} while no reader was attached, "
            f"{summary['lost_reader_behind']} with the reader behind"
        )
    print(
        f"hvtrace: wrote {summary['records']} records to {args.output} (stopped: {summary['stop']}; "
        f"lost {lost}{where if lost else ': lossless'})",
        flush=True,
    )
    return 0


def symbolize_option(path: Path | None, files: list[TraceFile]) -> Symbolize | None:
    """``--symbols``: RIPs as ``symbol+0xoff`` (the KASLR slide found from the first file, said once)."""
    table = load_symbols(path)
    if table is None:
        return None
    err(apply_slide(table, files[0].records(ordered=False)))
    return symbolizer(table)


def cmd_export(args: argparse.Namespace) -> int:
    if len(args.files) > 1 and args.format != "parquet":
        raise UsageError(f"--format {args.format} exports one trace file ({len(args.files)} given)")
    if args.format == "parquet":
        check_output_dir(args.output)
    else:
        check_output(args.output, inputs=tuple(args.files))  # before the input is read
    files = [TraceFile.open(p) for p in args.files]
    fmt = perfetto_kind(args.format, sum(tf.record_count for tf in files))
    n = export(files, fmt, args.output, symbolize_option(args.symbols, files))
    lost = sum(tf.lost_total() for tf in files)
    print(
        f"hvtrace: exported {n} records to {args.output} ({fmt})"
        + (f"; {lost} records lost" if lost else ""),
        flush=True,
    )
    return max(warn_damage(tf) for tf in files)
