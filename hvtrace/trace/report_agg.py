"""What `hvtrace report` keeps while it streams: per group (exit reason, CPU) counts and handling-time
statistics, drill-down value counts and the TSC span. Its size depends on the distinct reasons, CPUs
and drill-down values, never on the number of records; two aggregates merge by adding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hvtrace.decode.record_meaning import DRILLDOWNS
from hvtrace.trace import report_hist

Columns = dict[str, np.ndarray[Any, Any]]
_NONE = np.iinfo(np.int64).max


@dataclass
class GroupStats:
    """One group's count, and over its records with a known handling time: count, sum, min, max, histogram."""

    count: int = 0
    timed: int = 0
    ticks: float = 0.0
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


def _group_by(
    groups: dict[int, GroupStats], ids: np.ndarray[Any, Any], keys: list[int], cols: Columns
) -> None:
    """Add a batch's records to ``groups``: record r belongs to ``keys[ids[r]]``."""
    n = len(keys)
    counts = np.bincount(ids, minlength=n)
    valid = cols["timed"]
    gv, hv = ids[valid], cols["handling"][valid]
    timed = np.bincount(gv, minlength=n)
    sums = np.bincount(gv, weights=hv.astype(np.float64), minlength=n)
    lo = np.full(n, _NONE, dtype=np.int64)
    hi = np.full(n, -1, dtype=np.int64)
    hvi = hv.astype(np.int64)
    np.minimum.at(lo, gv, hvi)
    np.maximum.at(hi, gv, hvi)
    hist = np.bincount(
        gv * report_hist.BUCKETS + report_hist.bucket_of(hv), minlength=n * report_hist.BUCKETS
    )
    hist = hist.reshape(n, report_hist.BUCKETS)
    for j, key in enumerate(keys):
        part = GroupStats(int(counts[j]), int(timed[j]), float(sums[j]), int(lo[j]), int(hi[j]), hist[j])
        if key in groups:
            groups[key].merge(part)
        else:
            groups[key] = part


def _dense(values: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], list[int]]:
    """Small dense ids for a batch's values and the value of each id."""
    uniq, ids = np.unique(values, return_inverse=True)
    return ids.reshape(-1), uniq.tolist()


@dataclass
class Aggregate:
    records: int = 0
    first_tsc: int = _NONE
    last_tsc: int = -1
    by_reason: dict[int, GroupStats] = field(default_factory=dict)  # key: kind << 16 | reason
    by_cpu: dict[int, GroupStats] = field(default_factory=dict)
    drill: dict[int, dict[int, int]] = field(default_factory=dict)  # kind -> value -> count

    def add(self, cols: Columns) -> None:
        """Add a batch of (already filtered) records given as columns (see report_scan.COLUMNS)."""
        n = len(cols["tsc"])
        if not n:
            return
        self.records += n
        tsc = cols["tsc"]
        self.first_tsc = min(self.first_tsc, int(tsc.min()))
        self.last_tsc = max(self.last_tsc, int(tsc.max()))
        kind = cols["kind"]
        key = kind.astype(np.uint32) << np.uint32(16) | cols["reason"].astype(np.uint32)
        _group_by(self.by_reason, *_dense(key), cols)
        _group_by(self.by_cpu, *_dense(cols["cpu"]), cols)
        for k, (_title, fld, shift) in DRILLDOWNS.items():
            sel = kind == k
            if not sel.any():
                continue
            vals, counts = np.unique(cols[fld][sel] >> np.uint64(shift), return_counts=True)
            d = self.drill.setdefault(k, {})
            for v, c in zip(vals.tolist(), counts.tolist(), strict=True):
                d[v] = d.get(v, 0) + c

    def merge(self, other: Aggregate) -> None:
        self.records += other.records
        self.first_tsc = min(self.first_tsc, other.first_tsc)
        self.last_tsc = max(self.last_tsc, other.last_tsc)
        for mine, theirs in ((self.by_reason, other.by_reason), (self.by_cpu, other.by_cpu)):
            for key, st in theirs.items():
                if key in mine:
                    mine[key].merge(st)
                else:
                    mine[key] = st
        for k, vals in other.drill.items():
            d = self.drill.setdefault(k, {})
            for v, c in vals.items():
                d[v] = d.get(v, 0) + c

    @property
    def span_ticks(self) -> int:
        return self.last_tsc - self.first_tsc if self.records else 0

    @property
    def total_ticks(self) -> float:
        """Handling time of every record whose handling time is known."""
        return sum(st.ticks for st in self.by_cpu.values())
