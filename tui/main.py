"""Entry point of `hvtrace tui` (:mod:`hvtrace.commands.tui` parses and checks the options, then calls
:func:`run`)."""

from __future__ import annotations

import argparse

from hvtrace.commands.report_handler import warn_damage
from hvtrace.launch.guest import launch_options
from hvtrace.symbols import load_symbols

from .app import HvTraceApp
from .sources import LiveSource, ReplaySource, Source


def make_source(args: argparse.Namespace) -> Source:
    if args.replay is not None:
        return ReplaySource(args.replay)
    if args.ram is not None:
        return LiveSource.attach(args.ram)
    opts = launch_options(args)  # --guest/--initrd/--append/--hv-append/--memory/--cpu-model/--qemu-arg
    if opts.guest is not None and args.backend == "bochs":
        opts.guest.check_grub()  # a usage error now, not a failed boot inside the UI
    return LiveSource.start(
        backend=args.backend or "qemu",
        timeout=args.timeout,
        gdb_port=args.gdb,
        gdb_stub=args.gdb_stub,
        **opts.session_args(),
    )


def run(args: argparse.Namespace) -> int:
    symbols = load_symbols(getattr(args, "symbols", None))  # before a session starts: a bad file fails fast
    source = make_source(args)
    app = HvTraceApp(source, log_capacity=args.log_size, symbols=symbols)
    try:
        app.run()
    finally:
        source.close()  # stops the session the TUI started
    if isinstance(source, ReplaySource) and source.engine is not None:
        return warn_damage(source.engine.file)  # the same line and exit code as report / export
    return 0
