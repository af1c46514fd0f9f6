"""What reaches the UI thread from the TUI's other threads: the poller's connection events (taken at the
next refresh, in order with the records) and the break controller's events (posted as Textual messages,
which is thread safe)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from .breaks import BreakEvent


@dataclass(frozen=True)
class SourceEvent:
    """From the poller: the source connected (``failed`` empty) or could not connect / read."""

    failed: str = ""


class BreakMessage(Message):
    """A break controller event, posted from the gdb thread."""

    def __init__(self, event: BreakEvent) -> None:
        super().__init__()
        self.event = event
