"""Replay engine: a trace file in time order across CPUs, with seek, next-of-reason and play at a speed.

The TUI drives it: ``position`` is a record index in the merged time order. The merged order is built
once (vectorised lexsort over every readable chunk), so seeking by time or index is a binary search;
files larger than memory would need chunk-wise loading through the index (not done yet).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from hvtrace.trace.filters import reason_mask
from hvtrace.trace.records import Records
from hvtrace.trace.tracefile import TraceFile


class Replay:
    """Iterate a trace file's records in TSC order; play, pause, seek, speed."""

    def __init__(self, path: Path | TraceFile) -> None:
        self.file = path if isinstance(path, TraceFile) else TraceFile.open(Path(path))
        self.records: Records = self.file.records(ordered=True)
        self.vendor = int(self.file.meta.get("vendor") or 0)
        self.tsc_hz: float | None = self.file.meta.get("tsc_hz")
        self.position = 0
        self.speed = 1.0
        self.paused = False

    def __len__(self) -> int:
        return len(self.records)

    @property
    def start_tsc(self) -> int:
        return int(self.records["tsc"][0]) if len(self.records) else 0

    @property
    def end_tsc(self) -> int:
        return int(self.records["tsc"][-1]) if len(self.records) else 0

    def seek_index(self, i: int) -> None:
        self.position = max(0, min(i, len(self.records)))

    def seek_tsc(self, tsc: int) -> None:
        """Position at the first record at or after ``tsc``."""
        self.position = int(np.searchsorted(self.records["tsc"], np.uint64(tsc), side="left"))

    def seek_time(self, seconds: float) -> None:
        """Position at ``seconds`` after the first record (TSC ticks when the TSC rate is unknown)."""
        ticks = seconds * self.tsc_hz if self.tsc_hz else seconds
        self.seek_tsc(self.start_tsc + int(ticks))

    def next_reason(self, name: str, *, cpu: int | None = None) -> int | None:
        """Move to the next record (after the current one) of a reason; returns its index or None."""
        rest = self.records[self.position + 1 :]
        mask = reason_mask(rest, [name], self.vendor)
        if cpu is not None:
            mask &= rest["cpu"] == cpu
        hits = np.flatnonzero(mask)
        if not hits.size:
            return None
        self.position = self.position + 1 + int(hits[0])
        return self.position

    def current(self) -> Records:
        return self.records[self.position : self.position + 1]

    def step(self, n: int = 1) -> Records:
        """The next ``n`` records; advances."""
        out = self.records[self.position : self.position + n]
        self.position += len(out)
        return out

    def __iter__(self) -> Iterator[Records]:
        while self.position < len(self.records):
            yield self.step(1)

    def play(
        self,
        emit: Callable[[Records], None],
        *,
        speed: float | None = None,
        batch_s: float = 0.02,
        sleep: Callable[[float], None] = time.sleep,
        stop: Callable[[], bool] | None = None,
    ) -> int:
        """Deliver records in batches paced by their TSC at ``speed`` x real time; returns records emitted.

        ``stop()`` (checked each batch) or ``paused`` end the play; resume by calling play again.
        """
        if speed is not None:
            self.speed = speed
        hz = self.tsc_hz or 1e9  # unknown rate: treat a tick as a nanosecond
        emitted = 0
        tsc = self.records["tsc"]
        while self.position < len(self.records) and not self.paused and not (stop and stop()):
            t_here = int(tsc[self.position])
            window = int(batch_s * self.speed * hz)
            end = int(np.searchsorted(tsc, np.uint64(t_here + max(window, 1)), side="left"))
            end = max(end, self.position + 1)
            batch = self.records[self.position : end]
            emit(batch)
            emitted += len(batch)
            self.position = end
            if self.position < len(self.records):
                gap = (int(tsc[self.position]) - t_here) / hz / self.speed
                sleep(min(gap, 1.0))
        return emitted
