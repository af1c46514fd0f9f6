"""The report's "top guest locations" section: per exit reason, the most frequent exit RIPs as
``symbol+0xoff`` (with ``--symbols``). Streams: each chunk of records adds its distinct (reason, RIP)
pair counts (numpy) and the few records that can tell the KASLR slide (:func:`hvtrace.kaslr.evidence`);
no record array is kept."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from hvtrace.decode.record_meaning import KIND_NAMES
from hvtrace.decode.vendor import reason_name
from hvtrace.kaslr import NO_SLIDE_LINE, SlideEvidence, find_slide
from hvtrace.symbols import SymbolTable
from hvtrace.trace.records import Records

TOP_LOCATIONS = 10


class LocationCounts:
    """Exits per (kind << 16 | reason, RIP), added chunk by chunk, and the slide evidence."""

    def __init__(self) -> None:
        self.pairs: Counter[tuple[int, int]] = Counter()
        self.evidence = SlideEvidence()

    def add(self, recs: Records) -> None:
        if not len(recs):
            return
        key = recs["kind"].astype(np.uint64) << np.uint64(16) | recs["reason"].astype(np.uint64)
        uniq, counts = np.unique(np.stack([key, recs["rip"]], axis=1), axis=0, return_counts=True)
        for (k, rip), c in zip(uniq.tolist(), counts.tolist(), strict=True):
            self.pairs[k, rip] += c
        self.evidence.add(recs)


def top_locations(
    counts: LocationCounts, table: SymbolTable, vendor: int, *, top: int = TOP_LOCATIONS
) -> list[dict[str, Any]]:
    """Per reason (biggest first): its ``top`` locations by count. A location is the symbol the RIP is
    in (``native_cpuid+0xf``), or the RIP in hex when no symbol holds it."""
    by_key: dict[int, Counter[str]] = {}
    for (k, rip), c in counts.pairs.items():
        by_key.setdefault(k, Counter())[table.text(rip) or f"{rip:#x}"] += c
    out: list[dict[str, Any]] = []
    for k, merged in by_key.items():
        total = sum(merged.values())
        rows = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        out.append(
            {
                "kind": KIND_NAMES.get(k >> 16, str(k >> 16)),
                "reason": k & 0xFFFF,
                "reason_name": reason_name(vendor, k & 0xFFFF),
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


def symbols_section(chunks: Any, table: SymbolTable, vendor: int) -> dict[str, Any]:
    """The JSON section from an iterable of record chunks: the slide found (and set on ``table``), how,
    and the top locations."""
    counts = LocationCounts()
    for recs in chunks:
        counts.add(recs)
    slide = find_slide(table, counts.evidence.records())
    table.slide = slide.value if slide is not None else 0
    return {
        "file": table.source,
        "format": table.kind,
        "slide": table.slide,
        "slide_from": slide.how if slide is not None else None,
        "slide_line": slide.line() if slide is not None else NO_SLIDE_LINE,
        "top_locations": top_locations(counts, table, vendor),
    }


def format_section(section: dict[str, Any]) -> str:
    return format_locations(section["top_locations"], section["slide_line"])
