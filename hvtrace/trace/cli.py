"""The `capture`, `report` and `export` subcommands: argument handling only, over the trace API."""

from __future__ import annotations

import argparse
import json
import sys

from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.interrupts import Interrupted, raise_on_signals
from hvtrace.launch.guest import launch_options
from hvtrace.trace.capture import Capture, Filter
from hvtrace.trace.errors import TraceError
from hvtrace.trace.export import export
from hvtrace.trace.output import check_output
from hvtrace.trace.report import build_report, format_text
from hvtrace.trace.tracefile import TraceFile


def err(message: str) -> None:
    print(f"hvtrace: {message}", file=sys.stderr, flush=True)


def _progress(line: str) -> None:
    print(f"\\r{line}   ", end="", file=sys.stderr, flush=True)


def cmd_capture(args: argparse.Namespace) -> int:
    if (args.ram is None) == (args.backend is None):
        err("usage error: give either --ram PATH (attach) or --backend (start a session)")
        return ExitCode.USAGE
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
                    cpus=args.cpus,
                    memory_mb=opts.memory_mb,
                    cmdline=opts.hv_cmdline,
                    guest=opts.guest,
                    cpu_model=opts.cpu_model,
                    qemu_args=opts.qemu_args,
                    lossless=not args.no_lossless,
                    on_info=lambda line: print(f"hvtrace: {line}", flush=True),
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
    if not args.quiet:
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


def main(args: argparse.Namespace) -> int:
    try:
        if args.command == "capture":
            return cmd_capture(args)
        if args.command == "report":
            return cmd_report(args)
        return cmd_export(args)
    except TraceError as e:
        err(f"error: {e.message}")
        return e.code
    except LaunchError as e:
        err(f"error: {e.message}")
        return e.code
