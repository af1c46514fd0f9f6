"""The report's drill-down counts (a numpy hash table of (kind, value) pairs) equal a plain count, also
when pairs collide (the table grows), when the table is full (pairs spill into a dict), for values too
wide for a key, across merges, and only for kinds that have a drill-down."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from hvtrace.abi import HvExitKind
from hvtrace.decode.record_meaning import DRILLDOWNS, drill_key
from hvtrace.trace import report_drill
from hvtrace.trace.report_drill import DrillTable

K = HvExitKind


def batch(rng: np.random.Generator, n: int, values: np.ndarray) -> dict[str, Any]:
    kinds = np.array([K.CPUID, K.MSR_READ, K.IO, K.STAGE2_FAULT, K.HLT, K.VMCALL], dtype=np.uint8)
    kind = kinds[rng.integers(0, len(kinds), n)]
    arg0 = values[rng.integers(0, len(values), n)].astype(np.uint64)
    gpa = (0xFEE00000 + rng.integers(0, 0x2000, n)).astype(np.uint64)
    return {"kind": kind, "arg0": arg0, "gpa": gpa}


def plain(batches: list[dict[str, Any]]) -> dict[int, dict[int, int]]:
    out: dict[int, Counter[int]] = {}
    for b in batches:
        for k, a, g in zip(b["kind"].tolist(), b["arg0"].tolist(), b["gpa"].tolist(), strict=True):
            if k in DRILLDOWNS:
                fld = {"arg0": a, "gpa": g}[DRILLDOWNS[k][1]]
                out.setdefault(k, Counter())[int(drill_key(k, fld >> DRILLDOWNS[k][2]))] += 1
    return {k: dict(c) for k, c in out.items()}


@pytest.mark.parametrize("distinct", [3, 40, 3000])
def test_counts_equal_a_plain_count(distinct: int) -> None:
    rng = np.random.default_rng(distinct)
    values = rng.integers(0, 2**40, distinct, dtype=np.uint64)
    batches = [batch(rng, 5000, values) for _ in range(4)]
    table = DrillTable()
    for b in batches:
        table.add(b)
    assert table.as_dict() == plain(batches)
    assert K.HLT not in table.as_dict()  # no drill-down for HLT: counted as value 0, left out


def test_a_full_table_spills_and_still_counts_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_drill, "_MAX_BITS", 2)  # 4 slots: most pairs spill
    rng = np.random.default_rng(1)
    batches = [batch(rng, 2000, np.arange(50, dtype=np.uint64)) for _ in range(3)]
    table = DrillTable(bits=1)
    for b in batches:
        table.add(b)
    assert table.spill
    assert table.as_dict() == plain(batches)


def test_values_too_wide_for_a_key_are_counted_by_sorting() -> None:
    rng = np.random.default_rng(2)
    wide = np.array([2**63 + 5, 2**60, 7], dtype=np.uint64)
    batches = [batch(rng, 3000, wide), batch(rng, 3000, np.arange(5, dtype=np.uint64))]
    table = DrillTable()
    for b in batches:
        table.add(b)
    assert table.as_dict() == plain(batches)
    assert 2**63 + 5 in table.as_dict()[K.CPUID]


def test_merged_tables_count_the_union() -> None:
    rng = np.random.default_rng(3)
    values = np.arange(100, dtype=np.uint64)
    a, b = batch(rng, 4000, values), batch(rng, 4000, values)
    ta, tb = DrillTable(), DrillTable()
    ta.add(a)
    tb.add(b)
    ta.merge(tb)
    assert ta.as_dict() == plain([a, b])
