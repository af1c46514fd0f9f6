"""What `hvtrace report` keeps while it streams: per group (exit reason, CPU) counts and handling-time
statistics, drill-down value counts and the TSC span. Its size depends on the distinct reasons, CPUs
and drill-down values, never on the number of records; two aggregates merge by adding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from hvtrace.trace import report_hist
from hvtrace.trace.report_drill import DrillTable

Columns = dict[str, np.ndarray[Any, Any]]
_NONE = np.iinfo(np.int64).max


@dataclass
class GroupStats:
    """One group's count, and over its records with a known handling time: count, sum, min, max, histogram."""

    count: int = 0
    timed: int = 0
    ticks: int = 0  # exact sum (a Python int): the same whichever way the records were aggregated
    lo: int = _NONE
    hi: int = -1
    hist: report_hist.Hist = field(default_factory=report_hist.empty)

    def merge(self, other: GroupStats) -> None:
        self.count += other.count
        self.timed += other.timed
        self.ticks += other.ticks
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)
        self.hist += other.hist

    def handling(self, hz: float | None) -> dict[str, float] | None:
        """min / avg / max / p99 handling time in seconds (``hz`` known) or TSC ticks; None if unknown."""
        if not self.timed:
            return None
        p99 = report_hist.percentile(self.hist, 99.0, self.lo, self.hi)
        vals = {
            "min": float(self.lo),
            "avg": self.ticks / self.timed,
            "max": float(self.hi),
            "p99": p99 or 0.0,
        }
        return {k: v / hz for k, v in vals.items()} if hz else vals


@dataclass
class _Timed:
    """A batch's records with a known handling time: their index (None: all), ticks (also as float64,
    which the sums take), histogram bucket."""

    index: np.ndarray[Any, np.dtype[np.intp]] | None
    ticks: np.ndarray[Any, np.dtype[np.int64]]
    fticks: np.ndarray[Any, np.dtype[np.float64]]
    bucket: np.ndarray[Any, np.dtype[np.int64]]

    @classmethod
    def of(cls, cols: Columns) -> _Timed:
        timed = cols["timed"]
        index = None if timed.all() else np.flatnonzero(timed)  # all: the usual v2 case, no gather
        ticks = cols["handling"].view(np.int64) if index is None else cols["handling"][index].view(np.int64)
        fticks = ticks.astype(np.float64)
        return cls(index, ticks, fticks, report_hist.bucket_of(ticks, fticks))


def _extremes(
    hist: np.ndarray[Any, Any], key: np.ndarray[Any, Any], gv: np.ndarray[Any, Any], t: _Timed
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.int64]]]:
    """Each cell's exact min and max handling time. The histogram says which bucket holds them; a
    bucket below 64 ticks is one value, and only the records of a wider extreme bucket are read again
    (instead of a ufunc.at over every record)."""
    n = hist.shape[0]
    lo = np.full(n, _NONE, dtype=np.int64)
    hi = np.full(n, -1, dtype=np.int64)
    cells = np.flatnonzero(hist.any(axis=1))
    if not len(cells):
        return lo, hi
    nz = hist[cells] != 0
    blo = nz.argmax(axis=1)
    bhi = report_hist.BUCKETS - 1 - nz[:, ::-1].argmax(axis=1)
    exact_lo, exact_hi = blo < report_hist.EXACT, bhi < report_hist.EXACT
    lo[cells[exact_lo]] = blo[exact_lo]
    hi[cells[exact_hi]] = bhi[exact_hi]
    want = np.zeros(hist.size, dtype=bool)
    want[cells[~exact_lo] * report_hist.BUCKETS + blo[~exact_lo]] = True
    want[cells[~exact_hi] * report_hist.BUCKETS + bhi[~exact_hi]] = True
    if want.any():
        sel = np.flatnonzero(want[key])  # a record in a cell's lowest or highest (wide) bucket
        g, v = gv[sel], t.ticks[sel]
        np.minimum.at(lo, g, v)  # other records of the same cell in the sample never go below its min
        np.maximum.at(hi, g, v)
    return lo, hi


#: float64 holds every integer below 2^53 exactly: a sum whose partial sums stay below is exact.
_F64_EXACT: Final = 1 << 53


def exact_sums(ids: np.ndarray[Any, Any], ticks: np.ndarray[Any, np.dtype[np.int64]], n: int) -> list[int]:
    """Per cell (of ``n``) the exact sum of ``ticks`` of the records in it (record r in cell ``ids[r]``;
    at most 2^21 records): each value is split into its low 32 bits and the rest, whose float64 sums
    stay below 2^53, so both are exact, then joined as Python ints."""
    low = np.bincount(ids, weights=(ticks & 0xFFFF_FFFF).astype(np.float64), minlength=n)
    high = np.bincount(ids, weights=(ticks >> 32).astype(np.float64), minlength=n)
    return [(int(h) << 32) + int(lw) for h, lw in zip(high.tolist(), low.tolist(), strict=True)]


def _cell_stats(ids: np.ndarray[Any, Any], n: int, t: _Timed) -> list[tuple[int, GroupStats]]:
    """The stats of the cells (of ``n``) holding records of a batch: record r is in cell ``ids[r]``.
    One histogram of (cell, bucket) keys gives the timed counts and where the extremes are."""
    counts = np.bincount(ids, minlength=n)
    gv = ids if t.index is None else ids[t.index]
    key = gv * report_hist.BUCKETS + t.bucket
    hist = np.bincount(key, minlength=n * report_hist.BUCKETS).reshape(n, report_hist.BUCKETS)
    timed = hist.sum(axis=1)
    lo, hi = _extremes(hist, key, gv, t)
    # One float64 sum per cell is exact while |value| x count < 2^53 (handling times of a few
    # thousand ticks: always); otherwise the split sums, so the total never depends on how the
    # records were batched (chunk summaries hold exact sums: hvtrace.trace.chunk_summary).
    bound = np.maximum(np.abs(lo[timed > 0]), np.abs(hi[timed > 0])).astype(np.float64) * timed[timed > 0]
    if bool((bound < _F64_EXACT / 2).all()):  # half: the bound itself is a rounded float64
        sums = [int(x) for x in np.bincount(gv, weights=t.fticks, minlength=n).tolist()]
    else:
        sums = exact_sums(gv, t.ticks, n)
    return [
        (j, GroupStats(int(counts[j]), int(timed[j]), sums[j], int(lo[j]), int(hi[j]), hist[j]))
        for j in np.flatnonzero(counts).tolist()
    ]


def _add(groups: dict[int, GroupStats], key: int, st: GroupStats) -> None:
    if key in groups:
        groups[key].merge(st)
    else:
        groups[key] = GroupStats(st.count, st.timed, st.ticks, st.lo, st.hi, st.hist.copy())


def _dense(values: np.ndarray[Any, Any], space: int) -> tuple[np.ndarray[Any, np.dtype[np.int32]], list[int]]:
    """Small dense ids for a batch's values (each below ``space``) and the value of each id; a lookup
    table instead of a sort (np.unique), which would cost more than the rest of the batch."""
    present = np.flatnonzero(np.bincount(values, minlength=space))
    lut = np.zeros(space, dtype=np.int32)
    lut[present] = np.arange(len(present), dtype=np.int32)
    return lut[values], present.tolist()


class _Pairs:
    """Ids (from 1) of the (kind, reason) pairs seen so far, kept across batches: one lookup table
    indexed by ``reason << 8 | kind``. It is allocated zeroed (calloc: untouched pages cost no memory),
    so only the pages of pairs seen become resident; a sort only of pairs not seen before."""

    def __init__(self) -> None:
        self.lut = np.zeros(1 << 24, dtype=np.int32)  # id; 0 = not seen
        self.keys: list[int] = [-1]  # kind << 16 | reason of each id (id 0: none)

    def __reduce__(self) -> tuple[type[_Pairs], tuple[()]]:
        """Pickled empty (a worker's aggregate goes back to the parent only to be merged, keyed by
        pair, not by id): never send the 64 MiB table."""
        return (_Pairs, ())

    def of(
        self, kind: np.ndarray[Any, Any], reason: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, np.dtype[np.int32]]:
        k24 = np.left_shift(reason, 8, dtype=np.int32)
        k24 |= kind
        ids = self.lut[k24]
        if ids.min() == 0:
            for k in np.unique(k24[ids == 0]).tolist():
                self.lut[k] = len(self.keys)
                self.keys.append((k & 0xFF) << 16 | k >> 8)
            ids = self.lut[k24]
        out: np.ndarray[Any, np.dtype[np.int32]] = ids
        return out


#: Most cells a batch's histogram spans directly (pair id x CPU); beyond, cells are renumbered densely.
_DIRECT_CELLS: Final = 256


def _cells(cols: Columns, pairs: _Pairs, cpus: int) -> tuple[np.ndarray[Any, Any], list[tuple[int, int]]]:
    """Ids of a batch's (kind, reason, CPU) cells and each id's (``kind << 16 | reason``, CPU): one
    grouping feeds both tables. Ids may be unused (no record): their cells count 0."""
    cell = pairs.of(cols["kind"], cols["reason"])
    cell *= cpus
    cell += cols["cpu"]
    space = len(pairs.keys) * cpus
    if space <= _DIRECT_CELLS:
        return cell, [(pairs.keys[c // cpus], c % cpus) for c in range(space)]
    cell, present = _dense(cell, space)
    return cell, [(pairs.keys[p // cpus], p % cpus) for p in present]


@dataclass
class Aggregate:
    records: int = 0
    first_tsc: int = _NONE
    last_tsc: int = -1
    by_reason: dict[int, GroupStats] = field(default_factory=dict)  # key: kind << 16 | reason
    by_cpu: dict[int, GroupStats] = field(default_factory=dict)
    drills: DrillTable = field(default_factory=DrillTable, repr=False, compare=False)
    _pairs: _Pairs = field(default_factory=_Pairs, repr=False, compare=False)

    def add(self, cols: Columns) -> None:
        """Add a batch of (already filtered) records given as columns (see report_scan.COLUMNS)."""
        n = len(cols["tsc"])
        if not n:
            return
        self.records += n
        tsc = cols["tsc"]
        self.first_tsc = min(self.first_tsc, int(tsc.min()))
        self.last_tsc = max(self.last_tsc, int(tsc.max()))
        ids, keys = _cells(cols, self._pairs, int(cols["cpu"].max()) + 1)
        kinds = set()
        for j, st in _cell_stats(ids, len(keys), _Timed.of(cols)):
            reason_key, cpu = keys[j]
            kinds.add(reason_key >> 16)
            _add(self.by_reason, reason_key, st)
            _add(self.by_cpu, cpu, st)
        self.drills.add(cols, kinds)

    def add_group(self, reason_key: int, cpu: int, st: GroupStats, first_tsc: int, last_tsc: int) -> None:
        """Add one (reason, CPU) group's records given as their stats and TSC range (a chunk summary's
        entry, hvtrace.trace.chunk_summary; its drill-down counts go to ``drills``)."""
        self.records += st.count
        self.first_tsc = min(self.first_tsc, first_tsc)
        self.last_tsc = max(self.last_tsc, last_tsc)
        _add(self.by_reason, reason_key, st)
        _add(self.by_cpu, cpu, st)

    def merge(self, other: Aggregate) -> None:
        self.records += other.records
        self.first_tsc = min(self.first_tsc, other.first_tsc)
        self.last_tsc = max(self.last_tsc, other.last_tsc)
        for mine, theirs in ((self.by_reason, other.by_reason), (self.by_cpu, other.by_cpu)):
            for key, st in theirs.items():
                _add(mine, key, st)
        self.drills.merge(other.drills)

    @property
    def drill(self) -> dict[int, dict[int, int]]:
        """Drill-down counts: kind -> value -> count."""
        return self.drills.as_dict()

    @property
    def span_ticks(self) -> int:
        return self.last_tsc - self.first_tsc if self.records else 0

    @property
    def total_ticks(self) -> int:
        """Handling time of every record whose handling time is known."""
        return sum(st.ticks for st in self.by_cpu.values())
