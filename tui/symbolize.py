"""The TUI's guest symbols (``--symbols``): the table, and its KASLR slide found from the records as
they arrive (live) or are replayed. Only records that can tell the slide are kept (MSR writes, and
CPUID / MSR exits at kernel RIPs, at most :data:`KEEP`), and the search reruns only when they bring a
RIP not seen before."""

from __future__ import annotations

from typing import Final

import numpy as np

from hvtrace.abi import HvExitKind
from hvtrace.kaslr import KERNEL_HALF, Slide, find_slide
from hvtrace.symbols import SymbolTable
from hvtrace.trace.records import Records, empty

KEEP: Final = 1 << 14
_KINDS: Final = (HvExitKind.CPUID, HvExitKind.MSR_READ, HvExitKind.MSR_WRITE)


class LiveSlide:
    def __init__(self, table: SymbolTable) -> None:
        self.table = table
        self.found: Slide | None = None
        self._kept = empty()
        self._rips: set[int] = set()

    def add(self, recs: Records) -> str | None:
        """Take a batch; the slide line when this batch made the slide known, else None."""
        if self.found is not None or len(self._kept) >= KEEP or not len(recs):
            return None
        useful = np.isin(recs["kind"], _KINDS) & (recs["rip"] >= np.uint64(KERNEL_HALF))
        useful |= recs["kind"] == HvExitKind.MSR_WRITE
        sel = recs[useful]
        new = set(np.unique(sel["rip"]).tolist()) - self._rips
        if not new:
            return None
        self._rips |= new
        self._kept = np.concatenate([self._kept, sel])[:KEEP]
        self.found = find_slide(self.table, self._kept)
        if self.found is None:
            return None
        self.table.slide = self.found.value
        return self.found.line()
