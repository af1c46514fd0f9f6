"""Drill-down value counts for `hvtrace report` (CPUID leaf, MSR index, I/O port... per kind:
hvtrace.decode.record_meaning.DRILLDOWNS), counted without sorting.

Every record of a batch gets one (kind, value) pair (kinds without a drill-down count value 0 and are
left out of the result); the pairs are counted in an open-addressing hash table kept across batches,
all numpy: hash, look up, compare, bincount of the hits. The distinct pairs are few (a guest reads a
few dozen MSRs), so after the first batch nearly every record is a hit; the others (new pairs, or a
pair whose slot holds another) go through np.unique and a dict. A sort of every batch (np.unique)
cost more than the rest of the report's aggregation.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from hvtrace.decode.record_meaning import DRILLDOWNS, drill_key

_BITS: Final = 10  # slots: 2^_BITS to start with, up to 2^_MAX_BITS
_MAX_BITS: Final = 16
_MULT: Final = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio, odd
_VALUE_BITS: Final = 56  # a key: kind << 56 | value
_VALUE_MASK: Final = (1 << _VALUE_BITS) - 1
_FREE: Final = np.uint64(0xFFFF_FFFF_FFFF_FFFF)  # kind 255, value 2^56-1: never a key (kind 255 has no
# drill-down, so its value is 0)
# per kind: 1 where the value is arg0 as it is (a multiplier), else 0; kinds in _COMPUTED take their
# value from another field, a shift or drill_key's page / register split; _TAG: the key's top byte
_ARG0 = np.zeros(256, dtype=np.uint64)
_COMPUTED: set[int] = set()
for _k, (_title, _fld, _shift) in DRILLDOWNS.items():
    if _fld == "arg0" and _shift == 0 and drill_key(_k, 12345) == 12345:
        _ARG0[_k] = 1
    else:
        _COMPUTED.add(int(_k))
_TAG = np.arange(256, dtype=np.uint64) << np.uint64(56)


def drill_values(
    cols: dict[str, np.ndarray[Any, Any]], kinds: set[int] | None = None
) -> np.ndarray[Any, Any]:
    """Each record's drill-down value (0 for kinds without one); ``kinds``: the kinds in the batch
    when the caller knows them."""
    kind = cols["kind"]
    values: np.ndarray[Any, np.dtype[np.uint64]] = cols["arg0"] * _ARG0[kind]
    if kinds is None:
        kinds = set(np.flatnonzero(np.bincount(kind, minlength=256)).tolist())
    for k in sorted(kinds & _COMPUTED):
        _title, fld, shift = DRILLDOWNS[k]
        sel = np.flatnonzero(kind == k)
        values[sel] = drill_key(k, cols[fld][sel] >> np.uint64(shift))
    return values


def _keys(cols: dict[str, np.ndarray[Any, Any]], kinds: set[int] | None) -> np.ndarray[Any, Any] | None:
    """Each record's (kind, value) pair as one u64: the kind in the top byte; None when a value needs
    that byte (not seen in practice: the values are leaves, MSR indices, ports, GPA pages)."""
    keys = drill_values(cols, kinds)
    if int(keys.max()) >> _VALUE_BITS:
        return None
    keys |= _TAG[cols["kind"]]
    return keys


def _slots(keys: np.ndarray[Any, np.dtype[np.uint64]], bits: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Hash slots: Fibonacci hashing (Knuth, TAOCP 6.4), the top ``bits`` bits of key * 2^64/phi."""
    h = keys * _MULT
    h >>= np.uint64(64 - bits)
    return h.view(np.int64)


class DrillTable:
    """Counts of (kind, value) pairs; ``as_dict()`` gives kind -> value -> count for drill-down kinds."""

    def __init__(self, bits: int = _BITS) -> None:
        self._reset(bits)
        self.spill: dict[tuple[int, int], int] = {}  # pairs counted outside the table

    def _reset(self, bits: int) -> None:
        self.bits = bits
        self.keys = np.full(1 << bits, _FREE, dtype=np.uint64)
        self.counts = np.zeros(1 << bits, dtype=np.int64)

    def add(self, cols: dict[str, np.ndarray[Any, Any]], kinds: set[int] | None = None) -> None:
        """Count a batch's records (``kinds``: the kinds in it, when the caller knows them)."""
        keys = _keys(cols, kinds)
        if keys is None:  # a value too wide for a key: count this batch by sorting
            values, kind = drill_values(cols, kinds), cols["kind"]
            for k in np.flatnonzero(np.bincount(kind, minlength=256)).tolist():
                vals, counts = np.unique(values[kind == k], return_counts=True)
                for v, c in zip(vals.tolist(), counts.tolist(), strict=True):
                    self.spill[(k, v)] = self.spill.get((k, v), 0) + c
            return
        slot = _slots(keys, self.bits)
        hit = self.keys[slot] == keys
        if hit.all():
            self.counts += np.bincount(slot, minlength=len(self.counts))
            return
        self.counts += np.bincount(slot[hit], minlength=len(self.counts))
        new, counts = np.unique(keys[~hit], return_counts=True)
        for key, c in zip(new.tolist(), counts.tolist(), strict=True):
            self._insert(key, c)

    def _insert(self, key: int, count: int) -> None:
        """Count a pair not in the table: into its free slot; a taken slot doubles the table (a few
        dozen pairs fit without collisions) until it is at its largest, then the pair spills."""
        s = int(_slots(np.array([key], dtype=np.uint64), self.bits)[0])
        if self.keys[s] == _FREE:
            self.keys[s], self.counts[s] = key, count
        elif self.bits < _MAX_BITS:
            pairs = self._table()
            pairs[key] = pairs.get(key, 0) + count
            self._reset(self.bits + 1)
            for k, c in pairs.items():
                self._insert(k, c)
        else:
            pair = (key >> _VALUE_BITS, key & _VALUE_MASK)
            self.spill[pair] = self.spill.get(pair, 0) + count

    def _table(self) -> dict[int, int]:
        used = np.flatnonzero(self.counts)
        return dict(zip(self.keys[used].tolist(), self.counts[used].tolist(), strict=True))

    def pairs(self) -> dict[tuple[int, int], int]:
        """Every counted (kind, value) pair."""
        out = dict(self.spill)
        for key, c in self._table().items():
            pair = (key >> _VALUE_BITS, key & _VALUE_MASK)
            out[pair] = out.get(pair, 0) + c
        return out

    def add_counts(self, kind: int, values: list[int], counts: list[int]) -> None:
        """Count ``counts[i]`` records of ``kind`` with value ``values[i]`` (a chunk summary's entries)."""
        spill = self.spill
        for v, c in zip(values, counts, strict=True):
            spill[kind, v] = spill.get((kind, v), 0) + c

    def merge(self, other: DrillTable) -> None:
        for pair, c in other.pairs().items():
            self.spill[pair] = self.spill.get(pair, 0) + c

    def as_dict(self) -> dict[int, dict[int, int]]:
        """kind -> value -> count, for the kinds with a drill-down."""
        out: dict[int, dict[int, int]] = {}
        for (k, v), c in self.pairs().items():
            if k in DRILLDOWNS:
                d = out.setdefault(k, {})
                d[v] = d.get(v, 0) + c
        return out
