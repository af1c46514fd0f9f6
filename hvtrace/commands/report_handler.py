"""What `hvtrace report` does (its parser: :mod:`hvtrace.trace.cli`), and the damage line every command
that reads a trace file prints. A module of its own so the report imports only what it runs: the
capture, export and symbol modules (pyarrow, perfetto's protos, ELF readers) took most of the CLI's
time on a summarised file. The guest symbols' modules (pyelftools, the KASLR search) load only with
--symbols."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from hvtrace.commands.parser import err
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.report import build_report, format_text
from hvtrace.trace.report_select import Selection
from hvtrace.trace.tracefile import TraceFile

if TYPE_CHECKING:
    from hvtrace.symbols import SymbolTable


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


def _symbol_table(path: Path | None) -> SymbolTable | None:
    """``--symbols``: the table, loaded before the report (a bad file fails fast); its readers are
    imported only then."""
    if path is None:
        return None
    from hvtrace.symbols import load  # noqa: PLC0415  (only with --symbols: the module's doc)

    return load(path)


def cmd_report(args: argparse.Namespace) -> int:
    tf = TraceFile.open(args.file)
    table = _symbol_table(args.symbols)
    reasons = [n for arg in args.reason for n in arg.split(",") if n] if args.reason else None
    sel = Selection.of(tf, args.cpu, reasons, args.since, args.until)
    rep = build_report(tf, sel, top=args.top, sort=args.sort, jobs=args.jobs, summaries=not args.no_summaries)
    section = ""
    if table is not None:  # the selected records only, a second streaming pass (whole records: RIPs)
        from hvtrace.trace.report_symbols import format_section, symbols_section  # noqa: PLC0415

        rep["symbols"] = symbols_section(sel.records(tf), table, int(tf.meta.get("vendor") or 0))
        section = format_section(rep["symbols"])
    if args.json:
        print(json.dumps(rep, indent=1, default=str))
    else:
        print(format_text(rep) + section)
    return warn_damage(tf)
