"""One log line per record (called only for the rows on screen): time, CPU, reason, RIP, the guest
instruction at RIP (disassembled, cached per RIP: hvtrace.trace.code), and the record's detail (operands and
decoded qualification) as hvtrace.decode.record_meaning words it for every tool.
"""

from __future__ import annotations

import math
from typing import Any

from hvtrace.decode.record_meaning import detail as record_detail
from hvtrace.symbols import SymbolTable
from hvtrace.trace.code import CodeCache

from .model import reason_info

INSN_WIDTH = 30  # the instruction column; longer text is cut with "…"
HEADER = f"{'time':>14}  {'cpu':>3}  {'reason':<18} {'rip':>18}  {'instruction':<{INSN_WIDTH}}  detail"


def format_time(tsc: int, base_tsc: int, tsc_hz: float | None) -> str:
    if tsc_hz:
        return f"{(tsc - base_tsc) / tsc_hz:14.6f}"
    return f"{tsc - base_tsc:14d}"


def format_ticks(ticks: float, tsc_hz: float | None) -> str:
    """A duration: seconds scaled (``1.52us``) when the TSC rate is known, else TSC ticks; "-" for NaN."""
    if math.isnan(ticks):  # no record with a known handling time
        return "-"
    if not tsc_hz:
        return f"{ticks:,.0f}t"
    s = ticks / tsc_hz
    for unit, scale in (("s", 1.0), ("ms", 1e3), ("us", 1e6)):
        if s >= 1 / scale:
            return f"{s * scale:.2f}{unit}"
    return f"{s * 1e9:.0f}ns"


def fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_record(
    rec: Any,
    vendor: int,
    base_tsc: int,
    tsc_hz: float | None,
    code: CodeCache | None = None,
    *,
    symbols: SymbolTable | None = None,
) -> str:
    """``rec`` is one numpy record (RECORD_DTYPE); ``code`` gives the instruction at its RIP (blank
    without one, "?" when the bytes are unknown); ``symbols`` puts ``<symbol+0xoff>`` before the detail
    when a guest symbol holds the RIP."""
    kind, reason = int(rec["kind"]), int(rec["reason"])
    info = reason_info(vendor, kind << 16 | reason)
    rip = int(rec["rip"])
    known = code.lookup(rip, int(rec["cr3"])) if code is not None else None
    detail = record_detail(
        vendor,
        kind,
        reason,
        qual=int(rec["qual"]),
        arg0=int(rec["arg0"]),
        arg1=int(rec["arg1"]),
        gpa=int(rec["gpa"]),
        insn=known.text if known is not None and known.size else None,
    )
    t = format_time(int(rec["tsc"]), base_tsc, tsc_hz)
    insn = fit(code.text(rip, int(rec["insn_len"]), int(rec["cr3"])), INSN_WIDTH) if code is not None else ""
    where = symbols.text(rip) if symbols is not None else ""
    if where:
        detail = f"<{where}> {detail}"
    return f"{t}  {int(rec['cpu']):>3}  {info.name[:18]:<18} {rip:#18x}  {insn:<{INSN_WIDTH}}  {detail}"
