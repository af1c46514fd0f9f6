"""The TUI's guest symbols (``--symbols``): the table, and its KASLR slide found from the records as
they arrive (live) or are replayed: the records that can tell it are collected (hvtrace.kaslr
.SlideEvidence) and the search reruns only when a batch brings new evidence, until the slide is found."""

from __future__ import annotations

from hvtrace.kaslr import Slide, SlideEvidence, find_slide
from hvtrace.symbols import SymbolTable
from hvtrace.trace.records import Records


class LiveSlide:
    def __init__(self, table: SymbolTable) -> None:
        self.table = table
        self.found: Slide | None = None
        self.evidence = SlideEvidence()

    def add(self, recs: Records) -> str | None:
        """Take a batch; the slide line when this batch made the slide known, else None."""
        if self.found is not None or not self.evidence.add(recs):
            return None
        self.found = find_slide(self.table, self.evidence.records())
        if self.found is None:
            return None
        self.table.slide = self.found.value
        return self.found.line()
