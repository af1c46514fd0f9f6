"""Reading a trace file for `hvtrace report`: only the columns it needs, chunk by chunk, in batches of a
bounded size, over a pool of processes when that helps.

A chunk the selection takes whole (its CPU selected, no --since/--until bound inside it) that carries a
summary (format 3, hvtrace.trace.chunk_summary) is merged from its summary, keeping the pairs --reason
selects, without decoding a record: the aggregate is the same (exact sums, the same histograms and
drill-down counts). Chunks cut by a bound, chunks without a summary (older files) and every chunk
when summaries are turned off (``report --no-summaries``) are decoded.

A columnar chunk (hvtrace.trace.chunk_columns) decodes only the frame of the report's fields, each a
plain column; a classic (byte-shuffled) chunk gives a field's byte planes without rebuilding whole
records. Workers are forked with the opened file (its mapping and index are shared); each aggregates
a run of chunks and sends back the aggregate (its size does not depend on the number of records).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, Protocol

import numpy as np

from hvtrace.trace import chunk_summary
from hvtrace.trace.errors import TraceError
from hvtrace.trace.report_agg import Aggregate, Columns
from hvtrace.trace.tracefile import TraceFile

#: Record fields the report reads (the CPU comes from the chunk header).
FIELDS: Final = ("kind", "reason", "tsc", "tsc_resume", "arg0", "gpa", "seq")
#: Records aggregated at once: bounds the memory of a batch (~40 bytes of columns per record, and
#: the temporaries of the aggregation); 2^16 to 2^18 measured the same speed.
BATCH_RECORDS: Final = 1 << 16
#: Below this many chunks one process does it all (starting workers costs more than it saves).
POOL_MIN_CHUNKS: Final = 256

#: Summaries merged at once (chunk_summary.merge_many), and read between two releases of the file's
#: pages: reading a summary maps the pages around it too (the kernel's fault-around, 64 KiB), so
#: without releases the resident size would grow with the file.
_SUMMARY_BATCH: Final = 64
#: A summarised chunk costs about this fraction of a decoded one: the pool's threshold counts them so
#: (benchmarks/report_throughput.py, 50 M records in 16,384-record chunks: 0.14 ms to check and merge
#: a summary, 1.15 ms to decode and aggregate a chunk; two processes merged the 50 M file's 3,052
#: summaries in 0.27 s against 0.43-0.52 s for one).
SUMMARY_WEIGHT: Final = 1 / 8

BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
Mask = Callable[[Columns], "BoolArray | None"]


class Filter(Protocol):
    """What the scan needs of a selection (hvtrace.trace.report_select.Selection)."""

    @property
    def fields(self) -> tuple[str, ...]: ...

    def mask(self, cols: Columns) -> BoolArray | None:
        """The records of a batch to keep (None: all)."""
        ...

    def whole(self, tf: TraceFile, i: int) -> bool:
        """Chunk ``i`` (a selected one) holds no record outside the --since/--until window (then
        ``pairs`` says which of its reasons are kept)."""
        ...

    def pairs(self, kind: np.ndarray[Any, Any], reason: np.ndarray[Any, Any]) -> BoolArray | None:
        """Which (kind, reason) pairs the selection keeps (None: all)."""
        ...


class _Batch:
    """Columns of several chunks copied into preallocated arrays (one batch of work for the aggregate)."""

    def __init__(self, fields: Sequence[str], dtype: np.dtype[np.void], capacity: int) -> None:
        assert dtype.fields is not None
        types = {f: dtype.fields[f][0] for f in fields if f in dtype.fields}
        self.capacity = capacity
        self.cols: Columns = {f: np.empty(capacity, t) for f, t in types.items()}
        self.cols["cpu"] = np.empty(capacity, np.uint16)
        self.n = 0

    def put(self, cpu: int, count: int, cols: Columns) -> None:
        """Add a chunk's records (its columns, as TraceFile.chunk_columns gives them)."""
        n, end = self.n, self.n + count
        self.cols["cpu"][n:end] = cpu
        for f, col in cols.items():
            self.cols[f][n:end] = col
        self.n = end

    def take(self) -> Columns:
        """The gathered records (views: valid until the next ``put``), with their handling times."""
        cols = {k: v[: self.n] for k, v in self.cols.items()}
        self.n = 0
        return _with_handling(cols)


def chunk_columns(tf: TraceFile, i: int, fields: Sequence[str] = FIELDS) -> Columns:
    """The given fields of chunk ``i`` as arrays, plus ``cpu``; a field the file's ABI lacks (v1:
    tsc_resume) is absent. Raises TraceError for a damaged chunk."""
    count, cols = tf.chunk_columns(i, fields)
    batch = _Batch(fields, tf.record_dtype(), count)
    if count:
        batch.put(int(tf.index["cpu"][i]), count, cols)
    return batch.take()


def _with_handling(cols: Columns) -> Columns:
    """Adds ``handling`` (tsc_resume - tsc, ticks) and ``timed`` (handling time known: resumed after)."""
    resume, tsc = cols.get("tsc_resume"), cols.get("tsc")
    if resume is None or tsc is None:  # ABI v1 file: not recorded
        cols["timed"] = np.zeros(len(cols["cpu"]), dtype=bool)
        cols["handling"] = np.zeros(len(cols["cpu"]), dtype=np.uint64)  # ticks (u64; < 2^63)
    else:
        cols["timed"] = (resume != 0) & (resume >= tsc)
        cols["handling"] = resume - tsc  # meaningful where timed
    return cols


def iter_batches(
    tf: TraceFile, chunks: Sequence[int], bad: list[int], fields: Sequence[str] = FIELDS
) -> Iterator[Columns]:
    """Columns of the readable chunks, about ``BATCH_RECORDS`` at once (a chunk is never split);
    damaged chunks are appended to ``bad``."""
    batch: _Batch | None = None
    cpus = tf.index["cpu"]
    for i in chunks:
        try:
            count, cols = tf.chunk_columns(i, fields)
        except TraceError:
            bad.append(i)
            continue
        if not count:
            continue
        if batch is not None and batch.n + count > batch.capacity:
            yield batch.take()
        if batch is None or count > batch.capacity:
            batch = _Batch(fields, tf.record_dtype(), max(BATCH_RECORDS, count))
        batch.put(int(cpus[i]), count, cols)
    if batch is not None and batch.n:
        yield batch.take()


#: glibc mallopt parameters (malloc.h) and what the report sets them to: a batch's arrays (up to a few
#: MiB) come from the heap and freed ones stay there for the next batch, instead of each being a fresh
#: mmap whose pages fault in again (measured: ~20 % of the report's CPU time). The heap keeps at most
#: _TRIM bytes free: bounded, like the rest of the report's memory.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP, _TRIM = 16 << 20, 64 << 20


@functools.cache
def tune_malloc() -> bool:
    """Keep the report's temporaries on the heap (glibc only; elsewhere nothing changes). Once a
    process; forked workers inherit it."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM))


def summarised(tf: TraceFile, i: int, sel: Filter, summaries: bool) -> bool:
    """Chunk ``i`` will be merged from its summary (if the summary proves readable)."""
    return summaries and tf.has_summary(i) and sel.whole(tf, i)


def _merge_summaries(
    tf: TraceFile, chunks: Sequence[int], sel: Filter, agg: Aggregate, bad: list[int]
) -> list[int]:
    """Merge the summaries of ``chunks`` into ``agg``; the chunks whose summary is of another version,
    to decode instead, are returned (damaged ones go to ``bad``)."""
    decode: list[int] = []
    cpus = tf.index["cpu"]
    batch: list[chunk_summary.Selected] = []
    for i in chunks:
        try:
            summary = tf.chunk_summary(i)
        except TraceError:
            bad.append(i)
            continue
        if summary is None:
            decode.append(i)
            continue
        batch.append((summary, int(cpus[i]), sel.pairs(summary.pairs["kind"], summary.pairs["reason"])))
        if len(batch) == _SUMMARY_BATCH:
            chunk_summary.merge_many(agg, batch)
            batch = []
            tf.release()
    chunk_summary.merge_many(agg, batch)
    tf.release()
    return decode


def aggregate(
    tf: TraceFile, chunks: Sequence[int], sel: Filter, summaries: bool = True
) -> tuple[Aggregate, list[int]]:
    """One process's work: the aggregate of the records ``sel`` keeps in ``chunks``, and the damaged
    chunks; with ``summaries``, chunks selected whole are merged from their summaries."""
    tune_malloc()
    agg, bad = Aggregate(), list[int]()
    whole = [i for i in chunks if summarised(tf, i, sel, summaries)]
    if whole:
        taken = set(whole)
        chunks = [i for i in chunks if i not in taken] + _merge_summaries(tf, whole, sel, agg, bad)
    for cols in iter_batches(tf, chunks, bad, sel.fields):
        keep = sel.mask(cols)
        agg.add(cols if keep is None else {k: v[keep] for k, v in cols.items()})
        tf.release()  # the pages just read: keep the resident size bounded
    return agg, bad


_FORKED: dict[str, tuple[TraceFile, Filter, bool]] = {}  # what forked workers inherit ("job")


def _work(chunks: list[int]) -> tuple[Aggregate, list[int]]:
    tf, sel, summaries = _FORKED["job"]
    return aggregate(tf, chunks, sel, summaries)


# multiprocessing (sockets, pickling: 34 M instructions, 1/13 of a summarised report's imports, measured
# with callgrind) is imported only when a pool is started: a report of a few hundred chunks runs in one
# process and never needs it.


def _can_fork() -> bool:
    import multiprocessing  # noqa: PLC0415

    return "fork" in multiprocessing.get_all_start_methods()


def _in_pool(
    tf: TraceFile, chunks: Sequence[int], sel: Filter, summaries: bool, jobs: int
) -> list[tuple[Aggregate, list[int]]]:
    """:func:`aggregate` of runs of ``chunks`` in ``jobs`` forked workers."""
    import multiprocessing  # noqa: PLC0415

    per = max(16, len(chunks) // (jobs * 4))  # several tasks per worker: even finish times
    tasks = [list(chunks[s : s + per]) for s in range(0, len(chunks), per)]
    _FORKED["job"] = (tf, sel, summaries)
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            return pool.map(_work, tasks, chunksize=1)
    finally:
        _FORKED.clear()


def default_jobs() -> int:
    """The CPUs this process may use that are not already busy (1-minute load average): on a shared
    machine whose CPUs are all busy, workers only add fork and merge costs (benchmarks/
    report_throughput.py measured a 2-process report slower than one under a load of 16 on 2 CPUs)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    idle = cpus - int(os.getloadavg()[0]) if hasattr(os, "getloadavg") else cpus
    return max(1, min(cpus, idle))


def scan(
    tf: TraceFile, chunks: Sequence[int], sel: Filter, jobs: int | None = None, summaries: bool = True
) -> Aggregate:
    """The aggregate of the records ``sel`` keeps in ``chunks``, over ``jobs`` processes (default: the
    CPUs this process may use); with ``summaries``, chunks selected whole are merged from their
    summaries. Chunks found damaged on the way are recorded in ``tf`` (its ``damage``)."""
    jobs = default_jobs() if jobs is None else jobs
    n_whole = sum(summarised(tf, i, sel, summaries) for i in chunks)
    work = len(chunks) - n_whole + n_whole * SUMMARY_WEIGHT
    if jobs <= 1 or work < POOL_MIN_CHUNKS or not _can_fork():
        results = [aggregate(tf, chunks, sel, summaries)]
    else:
        results = _in_pool(tf, chunks, sel, summaries, jobs)
    total = Aggregate()
    for agg, bad in results:
        total.merge(agg)
        for i in bad:  # read again here so the file records why (workers' notes are theirs)
            with contextlib.suppress(TraceError):
                if summarised(tf, i, sel, summaries):
                    tf.chunk_summary(i)
                tf.chunk_columns(i, FIELDS)
    return total
