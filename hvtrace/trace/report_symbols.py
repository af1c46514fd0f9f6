"""The report's "top guest locations" section: per exit reason, the most frequent exit RIPs as
``symbol+0xoff`` (with ``--symbols``), counted with numpy over (reason, RIP) pairs."""

from __future__ import annotations

from typing import Any

import numpy as np

from hvtrace.decode.record_meaning import KIND_NAMES
from hvtrace.decode.vendor import reason_name
from hvtrace.kaslr import NO_SLIDE_LINE, find_slide
from hvtrace.symbols import SymbolTable
from hvtrace.trace.records import Records

TOP_LOCATIONS = 10


def top_locations(
    recs: Records, table: SymbolTable, vendor: int, *, top: int = TOP_LOCATIONS
) -> list[dict[str, Any]]:
    """Per reason (biggest first): its ``top`` locations by count. A location is the symbol the RIP is
    in (``native_cpuid+0xf``), or the RIP in hex when no symbol holds it."""
    if not len(recs):
        return []
    key = recs["kind"].astype(np.uint64) << np.uint64(16) | recs["reason"].astype(np.uint64)
    pairs = np.stack([key, recs["rip"]], axis=1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    out: list[dict[str, Any]] = []
    for k in np.unique(uniq[:, 0]).tolist():
        sel = uniq[:, 0] == k
        rips, n = uniq[sel, 1].tolist(), counts[sel].tolist()
        merged: dict[str, int] = {}
        for rip, c in zip(rips, n, strict=True):
            where = table.text(int(rip)) or f"{int(rip):#x}"
            merged[where] = merged.get(where, 0) + int(c)
        total = sum(n)
        rows = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        out.append(
            {
                "kind": KIND_NAMES.get(int(k) >> 16, str(int(k) >> 16)),
                "reason": int(k) & 0xFFFF,
                "reason_name": reason_name(vendor, int(k) & 0xFFFF),
                "count": total,
                "locations": [{"location": w, "count": c, "percent": 100.0 * c / total} for w, c in rows],
            }
        )
    out.sort(key=lambda r: -r["count"])
    return out


def format_locations(section: list[dict[str, Any]], slide_line: str) -> str:
    lines = ["", slide_line, "", "top guest locations per reason"]
    for r in section:
        lines.append(f"{r['reason_name']} ({r['kind']}), {r['count']} exits")
        for loc in r["locations"]:
            lines.append(f"    {loc['location']:<48} {loc['count']:>10} {loc['percent']:>6.2f}%")
    return "\n".join(lines)


def symbols_section(recs: Records, table: SymbolTable, vendor: int) -> dict[str, Any]:
    """The JSON section: the slide found (and set on ``table``), how, and the top locations."""
    slide = find_slide(table, recs)
    table.slide = slide.value if slide is not None else 0
    return {
        "file": table.source,
        "format": table.kind,
        "slide": table.slide,
        "slide_from": slide.how if slide is not None else None,
        "slide_line": slide.line() if slide is not None else NO_SLIDE_LINE,
        "top_locations": top_locations(recs, table, vendor),
    }


def format_section(section: dict[str, Any]) -> str:
    return format_locations(section["top_locations"], section["slide_line"])
