"""Reading a trace file for `hvtrace report`: only the columns it needs, chunk by chunk, in batches of a
bounded size, over a pool of processes when that helps.

A chunk's payload is byte-shuffled (one plane per record byte), so a field of s bytes is s planes: it
is gathered without rebuilding whole records. Workers are forked with the opened file (its mapping and
index are shared); each aggregates a run of chunks and sends back the aggregate (its size does not
depend on the number of records).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import numpy as np

from hvtrace.trace.errors import TraceError
from hvtrace.trace.report_agg import Aggregate, Columns
from hvtrace.trace.tracefile import TraceFile

#: Record fields the report reads (the CPU comes from the chunk header).
FIELDS: Final = ("kind", "reason", "tsc", "tsc_resume", "arg0", "gpa", "seq")
#: Records aggregated at once: bounds the memory of a batch (~40 bytes of columns per record).
BATCH_RECORDS: Final = 1 << 18
#: Below this many chunks one process does it all (starting workers costs more than it saves).
POOL_MIN_CHUNKS: Final = 256

Mask = Callable[[Columns], "np.ndarray[Any, np.dtype[np.bool_]] | None"]


def chunk_columns(tf: TraceFile, i: int, fields: Sequence[str] = FIELDS) -> Columns:
    """The given fields of chunk ``i`` as arrays, plus ``cpu``; a field the file's ABI lacks (v1:
    tsc_resume) is absent. Raises TraceError for a damaged chunk."""
    count, payload, dtype = tf.chunk_bytes(i)
    cols: Columns = {"cpu": np.full(count, int(tf.index["cpu"][i]), dtype=np.uint16)}
    if not count or dtype.fields is None:
        return cols  # a loss marker: no records
    if payload.shuffled:
        planes = np.frombuffer(payload.raw, dtype=np.uint8).reshape(dtype.itemsize, count)
        for f in fields:
            if f not in dtype.fields:
                continue
            ftype, off = dtype.fields[f][0], dtype.fields[f][1]
            part = planes[off : off + ftype.itemsize]
            cols[f] = (
                part[0].copy() if ftype.itemsize == 1 else np.ascontiguousarray(part.T).view(ftype)[:, 0]
            )
    else:
        recs = np.frombuffer(payload.raw, dtype=dtype)
        for f in fields:
            if f in dtype.fields:
                cols[f] = np.ascontiguousarray(recs[f])
    return cols


def _with_handling(cols: Columns) -> Columns:
    """Adds ``handling`` (tsc_resume - tsc, ticks) and ``timed`` (handling time known: resumed after)."""
    n = len(cols["tsc"])
    resume = cols.get("tsc_resume")
    if resume is None:  # ABI v1 file: not recorded
        cols["timed"] = np.zeros(n, dtype=bool)
        cols["handling"] = np.zeros(n, dtype=np.uint64)
    else:
        cols["timed"] = (resume != 0) & (resume >= cols["tsc"])
        cols["handling"] = np.where(cols["timed"], resume - cols["tsc"], np.uint64(0))
    return cols


def _concat(parts: list[Columns]) -> Columns:
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def iter_batches(tf: TraceFile, chunks: Sequence[int], bad: list[int]) -> Iterator[Columns]:
    """Columns of the readable chunks, ``BATCH_RECORDS`` at most at once (a chunk is never split);
    damaged chunks are appended to ``bad``."""
    parts: list[Columns] = []
    held = 0
    for i in chunks:
        try:
            cols = chunk_columns(tf, i)
        except TraceError:
            bad.append(i)
            continue
        if len(cols["cpu"]):
            parts.append(cols)
            held += len(cols["cpu"])
        if held >= BATCH_RECORDS:
            yield _with_handling(_concat(parts))
            parts, held = [], 0
    if parts:
        yield _with_handling(_concat(parts))


def aggregate(tf: TraceFile, chunks: Sequence[int], mask: Mask) -> tuple[Aggregate, list[int]]:
    """One process's work: the aggregate of ``chunks`` (records kept by ``mask``) and the damaged ones."""
    agg, bad = Aggregate(), list[int]()
    for cols in iter_batches(tf, chunks, bad):
        keep = mask(cols)
        agg.add(cols if keep is None else {k: v[keep] for k, v in cols.items()})
        tf.release()  # the pages just read: keep the resident size bounded
    return agg, bad


_FORKED: dict[str, tuple[TraceFile, Mask]] = {}  # what forked workers inherit ("job")


def _work(chunks: list[int]) -> tuple[Aggregate, list[int]]:
    tf, mask = _FORKED["job"]
    return aggregate(tf, chunks, mask)


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def scan(tf: TraceFile, chunks: Sequence[int], mask: Mask, jobs: int | None = None) -> Aggregate:
    """The aggregate of ``chunks``, over ``jobs`` processes (default: the CPUs this process may use);
    chunks found damaged on the way are recorded in ``tf`` (its ``damage``)."""
    jobs = default_jobs() if jobs is None else jobs
    if jobs <= 1 or len(chunks) < POOL_MIN_CHUNKS or "fork" not in multiprocessing.get_all_start_methods():
        results = [aggregate(tf, chunks, mask)]
    else:
        per = max(16, len(chunks) // (jobs * 4))  # several tasks per worker: even finish times
        tasks = [list(chunks[s : s + per]) for s in range(0, len(chunks), per)]
        _FORKED["job"] = (tf, mask)
        try:
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                results = pool.map(_work, tasks, chunksize=1)
        finally:
            _FORKED.clear()
    total = Aggregate()
    for agg, bad in results:
        total.merge(agg)
        for i in bad:  # read again here so the file records why (workers' notes are theirs)
            with contextlib.suppress(TraceError):
                tf.chunk_bytes(i)
    return total
