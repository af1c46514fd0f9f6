"""Exit statistics for the TUI, aggregated with numpy per batch (never per record in Python).

A reason is keyed ``kind << 16 | reason`` (the vendor-neutral kind next to the native reason). Counts
live in a dense ``(cpus, slots)`` matrix; a batch costs one ``np.unique`` over ``cpu, key`` and one
scatter-add. The drill-downs are dense too: per kind, the sorted operand values seen and a ``(cpus,
values)`` count matrix, extended per batch with ``np.unique`` and ``np.bincount``. Rates come from
snapshots of the count matrix taken at each refresh (clock supplied by the caller: wall time live, trace
time in replay), the sparkline from per-second bins; both are cached until the next refresh.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from hvtrace.decode.record_meaning import DRILLDOWNS, drill_key, drill_text, kind_name
from hvtrace.decode.vendor import reason_name
from hvtrace.trace.records import Records

KEY_SPACE = 1 << 21  # kind (< 32) << 16 | reason (16 bits)
HISTORY_S = 60

Counts = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def record_keys(recs: Records) -> npt.NDArray[np.int64]:
    """The reason key of every record (``kind << 16 | reason``)."""
    return (recs["kind"].astype(np.int64) << 16) | recs["reason"].astype(np.int64)


@dataclass(frozen=True)
class ReasonInfo:
    key: int
    kind: int
    reason: int
    name: str  # native reason name
    kind_name: str

    @property
    def label(self) -> str:
        return self.name


def reason_info(vendor: int, key: int) -> ReasonInfo:
    kind, reason = key >> 16, key & 0xFFFF
    return ReasonInfo(key, kind, reason, reason_name(vendor, reason), kind_name(kind))


@dataclass
class DrillRow:
    value: int
    count: int
    percent: float
    text: str  # the value worded as the log words the operand (record_meaning.drill_text)


@dataclass
class DrillCounts:
    """One kind's operand breakdown: ``values`` (sorted, unique) and their counts per CPU."""

    values: npt.NDArray[np.uint64]
    counts: Counts  # (cpus, len(values))

    @classmethod
    def new(cls, cpus: int) -> DrillCounts:
        return cls(np.zeros(0, dtype=np.uint64), np.zeros((cpus, 0), dtype=np.int64))

    def add(self, cpu: npt.NDArray[np.int64], vals: npt.NDArray[np.uint64], cpus: int) -> None:
        """Count the (cpu, value) pairs of a batch: one np.unique over the values, one bincount."""
        uniq = np.unique(vals)
        if self.counts.shape[0] < cpus:
            grow = np.zeros((cpus - self.counts.shape[0], self.counts.shape[1]), dtype=np.int64)
            self.counts = np.vstack([self.counts, grow])
        if not np.isin(uniq, self.values, assume_unique=True).all():
            merged = np.union1d(self.values, uniq)
            counts = np.zeros((self.counts.shape[0], len(merged)), dtype=np.int64)
            counts[:, np.searchsorted(merged, self.values)] = self.counts
            self.values, self.counts = merged, counts
        rows, width = self.counts.shape
        flat = cpu * width + np.searchsorted(self.values, vals).astype(np.int64)
        self.counts += np.bincount(flat, minlength=rows * width).reshape(rows, width)


@dataclass
class ExitStats:
    """Per-CPU exit counts by reason, rates and a minute of per-second history."""

    cpus: int
    vendor: int
    keys: list[int] = field(default_factory=list)  # slot -> reason key
    slot_of: dict[int, int] = field(default_factory=dict)
    counts: Counts = field(init=False)
    # handling time (tsc_resume - tsc) summed per CPU and slot, over the records that carry it (timed)
    ticks: Floats = field(init=False)
    timed: Counts = field(init=False)
    drill: dict[int, DrillCounts] = field(default_factory=dict)  # kind -> operand counts per CPU
    records: int = 0
    _snaps: deque[tuple[float, Counts]] = field(default_factory=deque)
    _bin_start: float | None = None
    _bin_base: Counts = field(init=False)
    history: deque[Counts] = field(init=False)  # per second: exits per CPU
    _rates: Floats | None = None  # rates() until the next tick / add / reset
    _sparks: dict[int | None, list[float]] = field(default_factory=dict)  # sparkline() until a bin closes

    def __post_init__(self) -> None:
        self.cpus = max(1, self.cpus)
        self.counts = np.zeros((self.cpus, 0), dtype=np.int64)
        self.ticks = np.zeros((self.cpus, 0), dtype=np.float64)
        self.timed = np.zeros((self.cpus, 0), dtype=np.int64)
        self._bin_base = np.zeros(self.cpus, dtype=np.int64)
        self.history = deque(maxlen=HISTORY_S)

    # ------------------------------------------------------------------ ingest
    def _grow_cpus(self, n: int) -> None:
        if n <= self.cpus:
            return
        extra = n - self.cpus
        self.counts = np.vstack([self.counts, np.zeros((extra, self.counts.shape[1]), dtype=np.int64)])
        self.ticks = np.vstack([self.ticks, np.zeros((extra, self.ticks.shape[1]), dtype=np.float64)])
        self.timed = np.vstack([self.timed, np.zeros((extra, self.timed.shape[1]), dtype=np.int64)])
        self._bin_base = np.concatenate([self._bin_base, np.zeros(extra, dtype=np.int64)])
        self.history = deque(
            (np.concatenate([h, np.zeros(extra, dtype=np.int64)]) for h in self.history), maxlen=HISTORY_S
        )
        self._snaps = deque(
            (t, np.vstack([c, np.zeros((extra, c.shape[1]), dtype=np.int64)])) for t, c in self._snaps
        )
        self.cpus = n
        self._rates = None
        self._sparks.clear()

    def _slot(self, key: int) -> int:
        slot = self.slot_of.get(key)
        if slot is None:
            slot = len(self.keys)
            self.keys.append(key)
            self.slot_of[key] = slot
            self.counts = np.hstack([self.counts, np.zeros((self.cpus, 1), dtype=np.int64)])
            self.ticks = np.hstack([self.ticks, np.zeros((self.cpus, 1), dtype=np.float64)])
            self.timed = np.hstack([self.timed, np.zeros((self.cpus, 1), dtype=np.int64)])
        return slot

    def add(self, recs: Records) -> None:
        """Count a batch: one np.unique over (cpu, key), a loop over the distinct pairs only, and per
        drill-down kind one np.unique over the operand values."""
        if not len(recs):
            return
        cpu = recs["cpu"].astype(np.int64)
        self._grow_cpus(int(cpu.max()) + 1)
        combined = cpu * KEY_SPACE + record_keys(recs)
        uniq, n = np.unique(combined, return_counts=True)
        slots = np.fromiter((self._slot(int(k) % KEY_SPACE) for k in uniq), dtype=np.int64, count=len(uniq))
        np.add.at(self.counts, (uniq // KEY_SPACE, slots), n)
        self._add_times(recs, combined, uniq, slots)
        self.records += len(recs)
        self._rates = None
        kinds = recs["kind"]
        present = np.unique(kinds).tolist()
        for kind, (_title, fld, shift) in DRILLDOWNS.items():
            if int(kind) not in present:
                continue
            sel = kinds == kind
            vals = drill_key(int(kind), recs[fld][sel] >> np.uint64(shift))
            table = self.drill.get(int(kind))
            if table is None:
                table = self.drill[int(kind)] = DrillCounts.new(self.cpus)
            table.add(cpu[sel], vals, self.cpus)

    def _add_times(self, recs: Records, combined: Counts, uniq: Counts, slots: Counts) -> None:
        """Handling time per (CPU, slot): records with tsc_resume 0 (not resumed, v1 files) are left out."""
        resumed = recs["tsc_resume"] != 0
        if not resumed.any():
            return
        dt = (recs["tsc_resume"][resumed].astype(np.int64) - recs["tsc"][resumed].astype(np.int64)).clip(0)
        pos = np.searchsorted(uniq, combined[resumed])  # every pair is in uniq
        rows, cols = uniq[pos] // KEY_SPACE, slots[pos]
        np.add.at(self.ticks, (rows, cols), dt.astype(np.float64))
        np.add.at(self.timed, (rows, cols), 1)

    def scope_avg_ticks(self, cpu: int | None) -> Floats:
        """Average handling time (TSC ticks) per slot for one CPU or all; NaN where none is known."""
        if cpu is None:
            ticks, timed = self.ticks.sum(axis=0), self.timed.sum(axis=0)
        elif cpu >= self.cpus:
            return np.full(len(self.keys), np.nan)
        else:
            ticks, timed = self.ticks[cpu], self.timed[cpu]
        out: Floats = np.divide(ticks, timed, out=np.full(len(ticks), np.nan), where=timed > 0)
        return out

    def reset(self) -> None:
        self.keys.clear()
        self.slot_of.clear()
        self.counts = np.zeros((self.cpus, 0), dtype=np.int64)
        self.ticks = np.zeros((self.cpus, 0), dtype=np.float64)
        self.timed = np.zeros((self.cpus, 0), dtype=np.int64)
        self.drill.clear()
        self.records = 0
        self._snaps.clear()
        self._bin_start = None
        self._bin_base = np.zeros(self.cpus, dtype=np.int64)
        self.history.clear()
        self._rates = None
        self._sparks.clear()

    # ------------------------------------------------------------------ clock
    def tick(self, now: float) -> None:
        """A refresh at ``now`` (seconds): snapshot for rates, close finished one-second bins."""
        self._snaps.append((now, self.counts.copy()))
        while len(self._snaps) > 2 and now - self._snaps[1][0] >= 1.0:
            self._snaps.popleft()
        self._rates = None
        per_cpu = self.counts.sum(axis=1)
        if self._bin_start is None or now < self._bin_start:
            self._bin_start = now
            self._bin_base = per_cpu
            return
        while now - self._bin_start >= 1.0:
            self._sparks.clear()
            self.history.append(per_cpu - self._bin_base)
            self._bin_base = per_cpu
            self._bin_start += 1.0
            if now - self._bin_start >= HISTORY_S:  # a long gap: skip straight to now
                self._bin_start = now

    def rates(self) -> Floats:
        """Exits per second over the last second, ``(cpus, slots)`` (computed once per refresh)."""
        if self._rates is None:
            self._rates = self._compute_rates()
        return self._rates

    def _compute_rates(self) -> Floats:
        zero: Floats = np.zeros(self.counts.shape, dtype=np.float64)
        if len(self._snaps) < 2:
            return zero
        t0, c0 = self._snaps[0]
        t1, c1 = self._snaps[-1]
        dt = t1 - t0
        if dt <= 0 or c1.shape != self.counts.shape:
            return zero
        c0 = np.pad(c0, ((0, c1.shape[0] - c0.shape[0]), (0, c1.shape[1] - c0.shape[1])))
        out: Floats = (c1 - c0).astype(np.float64) / dt
        return out

    # ------------------------------------------------------------------ views
    def scope_counts(self, cpu: int | None) -> Counts:
        """Counts per slot for one CPU or all (None)."""
        out: Counts
        if cpu is None:
            out = self.counts.sum(axis=0)
        elif cpu >= self.cpus:
            out = np.zeros(len(self.keys), dtype=np.int64)
        else:
            out = self.counts[cpu]
        return out

    def scope_rates(self, cpu: int | None) -> Floats:
        r = self.rates()
        out: Floats
        if cpu is None:
            out = r.sum(axis=0)
        elif cpu >= r.shape[0]:
            out = np.zeros(len(self.keys), dtype=np.float64)
        else:
            out = r[cpu]
        return out

    def sparkline(self, cpu: int | None) -> list[float]:
        """Exits per second for the last minute (oldest first); the same list until a bin closes."""
        out = self._sparks.get(cpu)
        if out is None:
            if cpu is None:
                out = [float(h.sum()) for h in self.history]
            else:
                out = [float(h[cpu]) if cpu < len(h) else 0.0 for h in self.history]
            self._sparks[cpu] = out
        return out

    def total(self, cpu: int | None) -> int:
        return int(self.scope_counts(cpu).sum())

    def drilldown(
        self, key: int, cpu: int | None, limit: int | None = None
    ) -> tuple[str, list[DrillRow]] | None:
        """Breakdown of one reason by its operand (CPUID leaf, MSR, CR, port, GPA page), biggest first
        (ties by value), at most ``limit`` rows; the percentages are of the whole scope."""
        kind = key >> 16
        spec = DRILLDOWNS.get(kind)
        if spec is None:
            return None
        title, _fld, shift = spec
        table = self.drill.get(kind)
        if table is None or not table.values.size:
            return title, []
        if cpu is None:
            counts = table.counts.sum(axis=0)
        elif cpu < table.counts.shape[0]:
            counts = table.counts[cpu]
        else:
            return title, []
        nz = np.flatnonzero(counts)
        order = nz[np.lexsort((table.values[nz], -counts[nz]))][:limit]
        total = int(counts.sum()) or 1
        return title, [
            DrillRow(v << shift, n, 100.0 * n / total, drill_text(kind, v << shift))
            for v, n in zip(table.values[order].tolist(), counts[order].tolist(), strict=True)
        ]


def summary(stats: ExitStats) -> dict[str, Any]:
    """Counts by reason name over all CPUs (tests, benchmarks)."""
    totals = stats.scope_counts(None)
    return {reason_info(stats.vendor, k).name: int(totals[s]) for s, k in enumerate(stats.keys)}
