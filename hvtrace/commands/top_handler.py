"""What `hvtrace top` does (its parser: :mod:`hvtrace.commands.top`)."""

from __future__ import annotations

import argparse
import sys
import time

from hvtrace.commands.parser import err
from hvtrace.commands.session_options import check_session_source
from hvtrace.interrupts import Interrupted, raise_on_signals
from hvtrace.launch.guest import launch_options
from hvtrace.trace.capture import Capture
from hvtrace.trace.top_counts import Interval, log_line, table

#: Seconds between ring reads within an interval (the rings are read often, shown once per interval).
POLL_PERIOD = 0.025
CLEAR_SCREEN = "\x1b[H\x1b[2J"


def _open(args: argparse.Namespace) -> Capture:
    if args.ram is not None:
        cap = Capture.attach(ram=args.ram, lossless=False)
    else:
        opts = launch_options(args)
        cap = Capture.start(backend=args.backend or "qemu", on_info=err, **opts.session_args())
    rings = getattr(cap.stream, "rings", None)
    if rings is not None:
        rings.skip_backlog()  # count from now: the exits of the intervals shown, not the ring's past
    return cap


def _interval(cap: Capture, seconds: float) -> Interval:
    iv = Interval(vendor=cap.vendor)
    lost0 = cap.lost()
    t0 = time.monotonic()
    end = t0 + seconds
    while True:
        iv.add(cap.poll())
        now = time.monotonic()
        if now >= end or not cap.alive():
            break
        time.sleep(min(POLL_PERIOD, end - now))
    iv.add(cap.poll())
    iv.seconds = time.monotonic() - t0
    iv.lost = cap.lost() - lost0
    return iv


def _show(cap: Capture, iv: Interval, args: argparse.Namespace) -> None:
    if args.log:
        print(log_line(iv, time.strftime("%Y-%m-%dT%H:%M:%S")), flush=True)
        return
    lines = table(iv, cpus=int(cap.meta.get("cpus") or 0), vendor_name=str(cap.meta.get("vendor_name")))
    redraw = not args.once and sys.stdout.isatty()
    print((CLEAR_SCREEN if redraw else "") + "\n".join(lines), flush=True)
    if not redraw and not args.once:
        print(flush=True)


def cmd_top(args: argparse.Namespace) -> int:
    check_session_source(args, source_required=False)
    with raise_on_signals():
        try:
            with _open(args) as cap:
                while True:
                    iv = _interval(cap, args.interval)
                    _show(cap, iv, args)
                    if args.once:
                        return 0
                    if not cap.alive():
                        err(cap.end_state())
                        return 0
        except Interrupted as e:
            if e.exit_code == 130:  # Ctrl-C is how a running top ends
                return 0
            return e.exit_code
