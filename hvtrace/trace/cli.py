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


def cmd_report(args: argparse.Namespace) -> int:
    tf = TraceFile.open(args.file)
    rep = build_report(tf)
    if args.json:
        print(json.dumps(rep, indent=1, default=str))
    else:
        print(format_text(rep))
    for e in tf.errors:
        err(f"warning: {args.file}: {e}")
    if tf.truncated_at is not None:
        err(
            f"note: {args.file}: truncated at offset {tf.truncated_at} (capture killed?); earlier chunks read"
        )
    return ExitCode.BAD_DATA if tf.errors else 0


def cmd_export(args: argparse.Namespace) -> int:
    n = export(args.file, args.format, args.output)
    print(f"hvtrace: exported {n} records to {args.output} ({args.format})", flush=True)
    return 0


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
