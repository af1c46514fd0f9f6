"""The ring poller: a worker thread reads the source every 25 ms and hands the batches over under a lock,
never waiting for the UI; the UI thread takes them at its next refresh (``take``)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from hvtrace.trace.records import Records

from .messages import SourceEvent
from .sources import LiveSource, ReplaySource, Source

REFRESH_S = 0.1  # the UI's refresh period
POLL_S = REFRESH_S / 4  # 25 ms: a 4096-record ring at 25k exits/s lasts 160 ms


@dataclass
class Taken:
    """What the poller handed over since the last refresh."""

    batches: list[Records] = field(default_factory=list)
    events: list[SourceEvent] = field(default_factory=list)
    played: Records | None = None  # a replay seek: every record before the new position


class Poller:
    def __init__(self, source: Source) -> None:
        self.source = source
        self._stop = threading.Event()
        self._done = threading.Event()
        # worker -> UI thread, under _lock: the batches read since the last refresh and the source events
        self._lock = threading.Lock()
        self._taken = Taken()

    def run(self) -> None:
        """The worker thread: connect, then read until stopped or the source fails."""
        try:
            try:
                self.source.connect()
            except Exception as e:  # boot / attach / load failed: shown, never a crash
                if isinstance(self.source, LiveSource):
                    self.source.fail(str(e))
                self._event(SourceEvent(str(e)))
                return
            self._event(SourceEvent())
            while not self._stop.is_set():
                try:
                    # a read and its hand-over are one step under the lock: a replay seek (take) then
                    # sees every record read so far either in the batches or in what it rebuilds from
                    with self._lock:
                        recs = self.source.poll()
                        if len(recs):
                            self._taken.batches.append(recs)
                except Exception as e:  # a torn-down session: report, keep the UI
                    self._event(SourceEvent(f"read failed: {e}"))
                    return
                self._stop.wait(POLL_S)
        finally:
            self._done.set()

    def _event(self, event: SourceEvent) -> None:
        if not self._stop.is_set():
            with self._lock:
                self._taken.events.append(event)

    def take(self) -> Taken:
        """UI thread: everything handed over since the last call."""
        src = self.source
        with self._lock:
            taken, self._taken = self._taken, Taken()
            if isinstance(src, ReplaySource) and src.seeked:
                taken.played = src.played()  # up to the new position: the batches are older or in it
        return taken

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker (never blocks the UI thread: it may still be in a boot or attach)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        while not self._done.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)


class ReadRate:
    """Records per second over the last second of refreshes."""

    def __init__(self) -> None:
        self._window: list[tuple[float, int]] = []
        self.value = 0.0

    def add(self, now: float, n: int) -> None:
        win = self._window
        win.append((now, n))
        while len(win) > 2 and now - win[0][0] > 1.0:
            win.pop(0)
        span = now - win[0][0]
        if span > 0:
            self.value = sum(k for _, k in win[1:]) / span
