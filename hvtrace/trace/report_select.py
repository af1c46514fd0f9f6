"""Which records `hvtrace report` counts: --cpu, --reason, and a time window --since / --until.

A window bound is ``1.5s`` (seconds after the file's first record; needs the TSC rate) or ``1000r``
(the 1000th record of the file in time order: by TSC, then CPU, then sequence — the order of
``hvtrace tui --replay``; all CPUs count, whatever --cpu keeps). --since keeps records at or after its
bound, --until those before it. A bound becomes a (tsc, cpu, seq) position: whole chunks outside the
window are never read, and only chunks across a bound are masked record by record.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hvtrace.exitcodes import ExitCode
from hvtrace.trace.errors import TraceError
from hvtrace.trace.filters import reason_mask
from hvtrace.trace.records import Records
from hvtrace.trace.report_agg import Columns
from hvtrace.trace.report_args import Bound
from hvtrace.trace.report_scan import FIELDS, chunk_columns
from hvtrace.trace.tracefile import TraceFile

Position = tuple[int, int, int]  # tsc, cpu, seq


class _Positions:
    """Finds the n-th record of the file in time order by bisecting on TSC: chunks entirely before a
    TSC count whole (from the index); only those across it are read (their TSCs are kept)."""

    def __init__(self, tf: TraceFile) -> None:
        self.tf = tf
        bad = tf.damaged_chunks()
        ok = np.array([i not in bad for i in range(len(tf.index))], dtype=bool)
        idx = tf.index
        self.rows = np.flatnonzero(ok & (idx["count"] > 0))
        self.first = idx["first_tsc"][self.rows].astype(np.int64)
        self.last = idx["last_tsc"][self.rows].astype(np.int64)
        self.count = idx["count"][self.rows].astype(np.int64)
        self._cols: dict[int, Columns] = {}

    def _columns(self, row: int) -> Columns:
        if row not in self._cols:
            self._cols[row] = chunk_columns(self.tf, row, ("tsc", "seq"))
        return self._cols[row]

    def before(self, t: int) -> int:
        """Records with tsc < t."""
        n = int(self.count[self.last < t].sum())
        for j in np.flatnonzero((self.first < t) & (self.last >= t)).tolist():
            n += int((self._columns(int(self.rows[j]))["tsc"] < np.uint64(t)).sum())
        return n

    def nth(self, n: int) -> Position | None:
        """The position of the n-th record (0-based) in time order; None past the last one."""
        if not len(self.rows) or n >= int(self.count.sum()):
            return None
        lo, hi = int(self.first.min()), int(self.last.max())
        while lo < hi:  # smallest t with more than n records at or before it
            mid = (lo + hi) // 2
            if self.before(mid + 1) > n:
                hi = mid
            else:
                lo = mid + 1
        ties = []
        for j in np.flatnonzero((self.first <= lo) & (self.last >= lo)).tolist():
            cols = self._columns(int(self.rows[j]))
            sel = cols["tsc"] == np.uint64(lo)
            ties += [(lo, int(c), int(s)) for c, s in zip(cols["cpu"][sel], cols["seq"][sel], strict=True)]
        ties.sort()
        return ties[n - self.before(lo)]


def _at_or_after(cols: Columns, pos: Position) -> np.ndarray[Any, np.dtype[np.bool_]]:
    t, c, s = (np.uint64(pos[0]), pos[1], np.uint64(pos[2]))
    tsc, cpu = cols["tsc"], cols["cpu"]
    after: np.ndarray[Any, np.dtype[np.bool_]] = (tsc > t) | (
        (tsc == t) & ((cpu > c) | ((cpu == c) & (cols["seq"] >= s)))
    )
    return after


@dataclass
class Selection:
    """The records a report counts; ``chunks()`` the chunks to read, ``mask()`` the records in them."""

    vendor: int
    cpus: set[int] | None = None
    reasons: list[str] | None = None
    since: Position | None = None
    until: Position | None = None  # exclusive
    empty: bool = False  # the window holds nothing

    @classmethod
    def of(
        cls,
        tf: TraceFile,
        cpus: set[int] | None = None,
        reasons: list[str] | None = None,
        since: Bound | None = None,
        until: Bound | None = None,
    ) -> Selection:
        vendor = int(tf.meta.get("vendor") or 0)
        if reasons:  # unknown names are a usage error now, before any chunk is read
            reason_mask(np.zeros(0, dtype=[("kind", "u1"), ("reason", "<u2")]), reasons, vendor)
        sel = cls(vendor, cpus, reasons)
        if since is None and until is None:
            return sel
        positions = _Positions(tf)
        for name, b in (("since", since), ("until", until)):
            if b is None:
                continue
            if b.unit == "s":
                hz = tf.meta.get("tsc_hz")
                if not hz:
                    raise TraceError(
                        ExitCode.USAGE,
                        f"--{name} {b}: the file has no TSC rate; give a record number (1000r)",
                    )
                start = int(positions.first.min()) if len(positions.rows) else 0
                pos: Position | None = (start + round(b.value * hz), 0, 0)
            else:
                pos = positions.nth(int(b.value))
            if name == "since":
                sel.since, sel.empty = pos, sel.empty or pos is None
            else:
                sel.until = pos  # None: past the last record, no upper bound
        return sel

    @property
    def fields(self) -> tuple[str, ...]:
        """Record fields the report reads: ``seq`` only to place records against a window bound."""
        needs_seq = self.since is not None or self.until is not None
        return tuple(f for f in FIELDS if f != "seq" or needs_seq)

    def chunks(self, tf: TraceFile) -> list[int]:
        """Readable chunks that may hold selected records (by CPU and TSC range, from the index)."""
        if self.empty:
            return []
        idx = tf.index
        keep = idx["count"] > 0
        if self.cpus is not None:
            keep &= np.isin(idx["cpu"], list(self.cpus))
        if self.since is not None:
            keep &= idx["last_tsc"] >= np.uint64(self.since[0])
        if self.until is not None:
            keep &= idx["first_tsc"] <= np.uint64(self.until[0])
        bad = tf.damaged_chunks()
        return [i for i in np.flatnonzero(keep).tolist() if i not in bad]

    def records(self, tf: TraceFile) -> Iterator[Records]:
        """The selected records, chunk by chunk (whole records: for sections that need other fields);
        damaged chunks are skipped (and recorded in ``tf``)."""
        for i in self.chunks(tf):
            try:
                recs = tf.read_chunk(i)
            except TraceError:
                continue
            keep = self.mask({name: recs[name] for name in ("kind", "reason", "cpu", "tsc", "seq")})
            yield recs if keep is None else recs[keep]
            tf.release()

    def whole(self, tf: TraceFile, i: int) -> bool:
        """Chunk ``i`` (one of ``chunks()``) holds no record outside the window: every record's TSC is
        in the chunk's [first_tsc, last_tsc] (index), so one strictly after --since's TSC and strictly
        before --until's is inside (a chunk touching a bound's TSC is decoded: exact either way)."""
        row = tf.index[i]
        if self.since is not None and int(row["first_tsc"]) <= self.since[0]:
            return False
        return self.until is None or int(row["last_tsc"]) < self.until[0]

    def pairs(
        self, kind: np.ndarray[Any, Any], reason: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, np.dtype[np.bool_]] | None:
        """Which (kind, reason) pairs --reason keeps (None: all): the test ``mask`` applies to records."""
        if not self.reasons:
            return None
        recs = np.empty(len(kind), dtype=[("kind", "u1"), ("reason", "<u2")])
        recs["kind"], recs["reason"] = kind, reason
        return reason_mask(recs, self.reasons, self.vendor)

    def mask(self, cols: Columns) -> np.ndarray[Any, np.dtype[np.bool_]] | None:
        """Records of a batch to keep; None = all (the common case costs nothing)."""
        keep = self.pairs(cols["kind"], cols["reason"])
        if self.since is not None:
            m = _at_or_after(cols, self.since)
            keep = m if keep is None else keep & m
        if self.until is not None:
            m = ~_at_or_after(cols, self.until)
            keep = m if keep is None else keep & m
        return keep
