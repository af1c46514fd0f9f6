"""The TUI reason table's handling-time column: ExitStats averages tsc_resume - tsc per reason and CPU
over the records that carry it (tsc_resume 0: not resumed / a v1 file), format_ticks words it."""

from __future__ import annotations

import math

import numpy as np

from hvtrace.abi import HvExitKind, HvVendor
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.tui.fmt import format_ticks
from hvtrace.tui.model import ExitStats


def batch(rows: list[tuple[int, int, int, int]]) -> np.ndarray:
    """(cpu, kind, tsc, tsc_resume) rows."""
    recs = np.zeros(len(rows), dtype=RECORD_DTYPE)
    for i, (cpu, kind, tsc, resume) in enumerate(rows):
        recs[i]["cpu"], recs[i]["kind"], recs[i]["tsc"], recs[i]["tsc_resume"] = cpu, kind, tsc, resume
        recs[i]["reason"] = kind
    return recs


def test_average_handling_time_per_reason_and_cpu() -> None:
    stats = ExitStats(cpus=1, vendor=int(HvVendor.SVM))
    cpuid, hlt = int(HvExitKind.CPUID), int(HvExitKind.HLT)
    stats.add(batch([(0, cpuid, 100, 130), (1, cpuid, 200, 290), (0, hlt, 300, 0)]))
    stats.add(batch([(1, cpuid, 400, 460), (0, hlt, 500, 0)]))  # a second batch, CPU 1 already known
    slot = {k & 0xFFFF: s for k, s in stats.slot_of.items()}
    everyone = stats.scope_avg_ticks(None)
    assert everyone[slot[cpuid]] == (30 + 90 + 60) / 3
    assert math.isnan(everyone[slot[hlt]])  # never resumed: unknown, not 0
    assert stats.scope_avg_ticks(0)[slot[cpuid]] == 30
    assert stats.scope_avg_ticks(1)[slot[cpuid]] == 75
    assert math.isnan(stats.scope_avg_ticks(5)[slot[cpuid]])
    stats.reset()
    assert len(stats.scope_avg_ticks(None)) == 0


def test_format_ticks() -> None:
    assert format_ticks(float("nan"), 1e9) == "-"
    assert format_ticks(1234.0, None) == "1,234t"
    assert format_ticks(1500.0, 1e9) == "1.50us"
    assert format_ticks(2.5e6, 1e9) == "2.50ms"
    assert format_ticks(3e9, 1e9) == "3.00s"
    assert format_ticks(42.0, 1e9) == "42ns"
