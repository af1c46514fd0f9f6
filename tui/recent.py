"""The recent-exits log: a numpy ring of the last N records, with a filtered index and search.

Records are addressed by their absolute arrival position ``pos`` (slot ``pos % capacity``). The filter
(CPU set, reason regex) is kept as a sorted array of the matching positions, extended per batch with
one vectorised mask and trimmed when the ring wraps; a filter change recomputes it over the ring once.
Only the rows on screen are ever formatted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hvtrace.trace.records import RECORD_DTYPE, Records

from .model import reason_info, record_keys

Positions = npt.NDArray[np.int64]


@dataclass
class LogFilter:
    cpus: frozenset[int] | None = None
    reason: re.Pattern[str] | None = None  # matched (search) against the reason and kind names

    @property
    def active(self) -> bool:
        return self.cpus is not None or self.reason is not None

    def describe(self) -> str:
        parts = []
        if self.cpus is not None:
            parts.append("CPU " + ",".join(str(c) for c in sorted(self.cpus)))
        if self.reason is not None:
            parts.append(f"reason /{self.reason.pattern}/")
        return " ".join(parts) or "none"


def parse_filter(text: str) -> LogFilter:
    """``cpu=0,1 reason=REGEX`` (either part optional; a bare word is a reason regex)."""
    cpus: frozenset[int] | None = None
    reason: re.Pattern[str] | None = None
    for part in text.split():
        name, _, value = part.partition("=")
        if name == "cpu" and value:
            cpus = frozenset(int(x) for x in value.split(","))
        elif name == "reason" and value:
            reason = re.compile(value, re.IGNORECASE)
        elif not value:
            reason = re.compile(part, re.IGNORECASE)
        else:
            raise ValueError(f"unknown filter {part!r} (cpu=N,M reason=REGEX)")
    return LogFilter(cpus, reason)


class RecentLog:
    """The last ``capacity`` records in arrival order, filterable and searchable without Python loops."""

    def __init__(self, capacity: int, vendor: int) -> None:
        self.capacity = max(1, capacity)
        self.vendor = vendor
        self.ring: Records = np.zeros(self.capacity, dtype=RECORD_DTYPE)
        self.appended = 0  # positions 0 .. appended-1 were ever appended
        self.filter = LogFilter()
        self.matches: Positions = np.zeros(0, dtype=np.int64)
        self._key_ok: dict[int, bool] = {}

    # ------------------------------------------------------------------ ring
    @property
    def first(self) -> int:
        """Oldest position still in the ring."""
        return max(0, self.appended - self.capacity)

    def __len__(self) -> int:
        """Rows shown (after the filter)."""
        return len(self.matches) if self.filter.active else self.appended - self.first

    def append(self, recs: Records) -> None:
        n = len(recs)
        if not n:
            return
        if n > self.capacity:
            skipped = n - self.capacity
            recs = recs[skipped:]
            self.appended += skipped
            n = self.capacity
        start = self.appended % self.capacity
        head = min(n, self.capacity - start)
        self.ring[start : start + head] = recs[:head]
        if head < n:
            self.ring[: n - head] = recs[head:]
        base = self.appended
        self.appended += n
        if self.filter.active:
            hit = np.flatnonzero(self._mask(recs)) + base
            first = self.first
            keep = self.matches[np.searchsorted(self.matches, first) :]
            self.matches = np.concatenate([keep, hit]) if hit.size else keep

    def clear(self) -> None:
        self.appended = 0
        self.matches = np.zeros(0, dtype=np.int64)

    def records_at(self, positions: Positions) -> Records:
        return self.ring[positions % self.capacity]

    # ------------------------------------------------------------------ filter
    def _reason_ok(self, key: int) -> bool:
        ok = self._key_ok.get(key)
        if ok is None:
            pat = self.filter.reason
            info = reason_info(self.vendor, key)
            ok = pat is None or bool(pat.search(info.name) or pat.search(info.kind_name))
            self._key_ok[key] = ok
        return ok

    def _mask(self, recs: Records) -> npt.NDArray[np.bool_]:
        mask = np.ones(len(recs), dtype=bool)
        if self.filter.cpus is not None:
            mask &= np.isin(recs["cpu"], list(self.filter.cpus))
        if self.filter.reason is not None:
            keys = record_keys(recs)
            uniq = np.unique(keys)
            good = [k for k in uniq.tolist() if self._reason_ok(int(k))]
            mask &= np.isin(keys, good)
        return mask

    def set_filter(self, flt: LogFilter) -> None:
        self.filter = flt
        self._key_ok = {}
        if not flt.active:
            self.matches = np.zeros(0, dtype=np.int64)
            return
        positions = np.arange(self.first, self.appended, dtype=np.int64)
        self.matches = positions[self._mask(self.records_at(positions))]

    # ------------------------------------------------------------------ rows
    def positions(self, row: int, count: int) -> Positions:
        """Positions of shown rows ``row .. row+count-1`` (clipped)."""
        n = len(self)
        row = max(0, row)
        end = min(n, row + max(0, count))
        if end <= row:
            return np.zeros(0, dtype=np.int64)
        if self.filter.active:
            return self.matches[row:end]
        return np.arange(self.first + row, self.first + end, dtype=np.int64)

    def rows(self, row: int, count: int) -> Records:
        return self.records_at(self.positions(row, count))

    def search(self, term: str, after_row: int, *, backwards: bool = False) -> int | None:
        """The next shown row (after ``after_row``) whose RIP / operand / GPA equals a hex number, or whose
        reason matches a regex; vectorised over the shown rows."""
        n = len(self)
        if not n or not term.strip():
            return None
        recs = self.rows(0, n)
        term = term.strip()
        mask: npt.NDArray[np.bool_]
        try:
            value = np.uint64(int(term, 16))
            mask = np.zeros(n, dtype=bool)
            for fld in ("rip", "arg0", "gpa", "qual"):
                mask |= recs[fld] == value
        except ValueError:
            mask = np.zeros(n, dtype=bool)
        try:
            pat = re.compile(term, re.IGNORECASE)
        except re.error:
            pat = None
        if pat is not None:
            keys = record_keys(recs)
            infos = [reason_info(self.vendor, k) for k in np.unique(keys).tolist()]
            good = [i.key for i in infos if pat.search(i.name) or pat.search(i.kind_name)]
            mask |= np.isin(keys, good)
        hits = np.flatnonzero(mask)
        if not hits.size:
            return None
        if backwards:
            before = hits[hits < after_row]
            return int(before[-1]) if before.size else int(hits[-1])
        later = hits[hits > after_row]
        return int(later[0]) if later.size else int(hits[0])
