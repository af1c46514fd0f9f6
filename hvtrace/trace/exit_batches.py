"""A trace file as Arrow record batches, one per chunk: every record field plus the derived columns that
`hvtrace query` (the ``exits`` table) and the Parquet export share: ``reason_name`` and ``kind_name``
(the names report uses), ``handling_ticks`` (tsc_resume - tsc, NULL when unknown), ``handling_s`` and
``t_s`` (seconds since the capture's first TSC; NULL when the TSC rate is unknown) and ``file``.

Batches are made chunk by chunk as they are consumed, so a big file is never held decoded at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from hvtrace.decode.record_meaning import kind_name
from hvtrace.decode.vendor import vendor_of
from hvtrace.trace.errors import TraceError
from hvtrace.trace.records import RECORD_DTYPE, Records
from hvtrace.trace.tracefile import TraceFile

#: Optional column-adding step (``--symbols``): a name (or None) per record, as the ``symbol`` column.
Symbolize = Callable[[Records], Sequence[str | None]]

#: Every record field, in the ABI's order, with its Arrow type (``reserved`` is padding: left out).
RECORD_FIELDS: list[pa.Field] = [
    pa.field(name, pa.from_numpy_dtype(RECORD_DTYPE[name]))
    for name in RECORD_DTYPE.names or ()
    if name != "reserved"
]
_NAMES = pa.dictionary(pa.int32(), pa.string())
DERIVED_FIELDS: list[pa.Field] = [
    pa.field("reason_name", _NAMES),
    pa.field("kind_name", _NAMES),
    pa.field("handling_ticks", pa.int64()),
    pa.field("handling_s", pa.float64()),
    pa.field("t_s", pa.float64()),
    pa.field("file", _NAMES),
]
AHEAD = 4  # batches made ahead of the consumer
_RECORD_NAMES = frozenset(f.name for f in RECORD_FIELDS)
_KIND_NAMES = pa.array([kind_name(k) for k in range(256)])  # a record's kind is its index here


def exits_schema(*, symbols: bool = False) -> pa.Schema:
    extra = [pa.field("symbol", pa.string())] if symbols else []
    return pa.schema([*RECORD_FIELDS, *DERIVED_FIELDS, *extra])


def first_tsc(tf: TraceFile) -> int | None:
    """The capture's first TSC (from the index: no record is read), None when it holds no record."""
    bad = {e.index for e in tf.errors}
    rows = [i for i in range(len(tf.index)) if int(tf.index["count"][i]) and i not in bad]
    return min(int(tf.index["first_tsc"][i]) for i in rows) if rows else None


@dataclass
class ExitBatches:
    """The records of one trace file as Arrow batches (see the module doc). ``label`` fills ``file``."""

    tf: TraceFile
    label: str
    symbolize: Symbolize | None = None
    #: Only these columns (None: all; never none at all: a batch without columns has no rows).
    columns: frozenset[str] | None = None

    def __post_init__(self) -> None:
        self.vendor = vendor_of(int(self.tf.meta.get("vendor") or 0))
        hz = self.tf.meta.get("tsc_hz")
        self.hz: float | None = float(hz) if hz else None
        self.t0 = first_tsc(self.tf) or 0
        self.schema = exits_schema(symbols=self.symbolize is not None)
        if self.columns is not None:
            keep = [f for f in self.schema if f.name in self.columns]
            self.schema = pa.schema(keep or [self.schema.field("cpu")])
        self._names: dict[int, str] = {}
        self._file = pa.array([self.label])

    def chunks(self) -> Iterator[tuple[int, Records]]:
        """(chunk number, records) of every readable chunk, read one at a time; a damaged one is skipped
        (kept in ``tf.errors`` for the one warning line)."""
        for i in self.tf.chunks():
            try:
                recs = self.tf.read_chunk(i)
            except TraceError:
                continue
            if len(recs):
                yield i, recs

    def _batch_of(self, chunk: int) -> pa.RecordBatch | None:
        try:
            recs = self.tf.read_chunk(chunk)
        except TraceError:
            return None  # kept in tf.errors for the one warning line
        return self.batch(recs) if len(recs) else None

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The batches in chunk order, made by two threads a few chunks ahead of the consumer (zlib
        and most numpy work release the GIL); at most AHEAD batches wait, so memory stays bounded."""
        with ThreadPoolExecutor(max_workers=2) as pool:
            ahead: deque[Future[pa.RecordBatch | None]] = deque()
            for chunk in self.tf.chunks():
                ahead.append(pool.submit(self._batch_of, chunk))
                if len(ahead) >= AHEAD and (b := ahead.popleft().result()) is not None:
                    yield b
            while ahead:
                if (b := ahead.popleft().result()) is not None:
                    yield b

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self.batches())

    def batch(self, recs: Records) -> pa.RecordBatch:
        cache: dict[str, Any] = {}
        cols = [self._column(f.name, recs, cache) for f in self.schema]
        return pa.RecordBatch.from_arrays(cols, schema=self.schema)

    def _reasons(self, recs: Records) -> tuple[np.ndarray[Any, Any], list[str]]:
        """Per record an index into the list of the distinct reason names of ``recs``."""
        uniq, inv = np.unique(recs["reason"], return_inverse=True)
        return inv, [self._reason_name(u) for u in uniq.tolist()]

    def _reason_name(self, reason: int) -> str:
        name = self._names.get(reason)
        if name is None:
            name = self._names[reason] = self.vendor.reason_name(reason)
        return name

    def reason_names(self, recs: Records) -> list[str]:
        inv, names = self._reasons(recs)
        return [names[i] for i in inv.tolist()]

    def _handling(self, recs: Records, cache: dict[str, Any]) -> tuple[np.ndarray[Any, Any], ...]:
        """Handling ticks and where they are unknown (0: not resumed / v1 file; below tsc: untrusted)."""
        if "ticks" not in cache:
            tsc, resume = recs["tsc"], recs["tsc_resume"]
            cache["ticks"] = (resume - tsc).astype(np.int64)
            cache["unknown"] = (resume == 0) | (resume < tsc)
        return cache["ticks"], cache["unknown"]

    def _column(self, name: str, recs: Records, cache: dict[str, Any]) -> pa.Array:
        n = len(recs)
        if name in _RECORD_NAMES:
            return pa.array(recs[name])
        if name == "reason_name":
            inv, names = self._reasons(recs)
            return pa.DictionaryArray.from_arrays(pa.array(inv.astype(np.int32)), pa.array(names))
        if name == "kind_name":
            return pa.DictionaryArray.from_arrays(pa.array(recs["kind"].astype(np.int32)), _KIND_NAMES)
        if name == "handling_ticks":
            ticks, unknown = self._handling(recs, cache)
            return pa.array(ticks, mask=unknown)
        if name == "handling_s":
            if not self.hz:
                return pa.nulls(n, pa.float64())
            ticks, unknown = self._handling(recs, cache)
            return pa.array(ticks / self.hz, mask=unknown)
        if name == "t_s":
            if not self.hz:
                return pa.nulls(n, pa.float64())
            return pa.array((recs["tsc"] - np.uint64(self.t0)).astype(np.int64) / self.hz)
        if name == "file":
            return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), self._file)
        if name == "symbol" and self.symbolize is not None:
            return pa.array(list(self.symbolize(recs)), pa.string())
        raise KeyError(name)
