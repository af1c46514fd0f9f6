"""The report's aggregate: what a worker sends back is small (no lookup tables: a 50 M-record report
with two workers once peaked at 700 MB pickling them), many CPUs x reasons (cells renumbered densely)
count the same as a plain count, and the malloc tuning is applied where it exists (glibc)."""

from __future__ import annotations

import pickle
import platform
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hvtrace.abi import HvExitKind
from hvtrace.trace import report_agg
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.trace.report import build_report
from hvtrace.trace.report_scan import iter_batches, tune_malloc
from hvtrace.trace.tracefile import TraceFile
from hvtrace.trace.writer import TraceWriter

KINDS = [(HvExitKind.CPUID, 10), (HvExitKind.MSR_READ, 31), (HvExitKind.IO, 30), (HvExitKind.HLT, 12)]


def many_cpus(path: Path, cpus: int = 80, per_cpu: int = 50) -> np.ndarray:
    rng = np.random.default_rng(5)
    recs = np.zeros(cpus * per_cpu, RECORD_DTYPE)
    recs["cpu"] = np.repeat(np.arange(cpus), per_cpu)
    recs["seq"] = np.tile(np.arange(1, per_cpu + 1), cpus)
    recs["tsc"] = 1000 + recs["seq"] * 5000
    recs["tsc_resume"] = recs["tsc"] + rng.integers(1, 90_000, len(recs))
    pick = rng.integers(0, len(KINDS), len(recs))
    recs["kind"] = np.array([k for k, _ in KINDS])[pick]
    recs["reason"] = np.array([r for _, r in KINDS])[pick]
    with TraceWriter(path, {"vendor": 1, "cpus": cpus, "tsc_hz": 1e9}) as w:
        w.add(recs)
    return recs


def test_a_workers_aggregate_pickles_small(tmp_path: Path) -> None:
    path = tmp_path / "t.hvt"
    many_cpus(path, cpus=4, per_cpu=5000)
    tf = TraceFile.open(path)
    agg = report_agg.Aggregate()
    for cols in iter_batches(tf, list(range(len(tf.index))), []):
        agg.add(cols)
    assert agg.records == 20_000
    blob = pickle.dumps(agg)
    assert len(blob) < 1 << 20  # histograms of 16 groups and 4 CPUs, not the 64 MiB pair table
    back = pickle.loads(blob)
    back.merge(agg)
    assert back.records == 40_000
    assert {k: s.count * 2 for k, s in agg.by_reason.items()} == {
        k: s.count for k, s in back.by_reason.items()
    }


def test_many_cpus_and_reasons_count_right(tmp_path: Path) -> None:
    recs = many_cpus(tmp_path / "many.hvt")
    assert len(KINDS) * 80 > report_agg._DIRECT_CELLS  # the dense renumbering is used
    rep = build_report(TraceFile.open(tmp_path / "many.hvt"), jobs=1)
    assert {r["cpu"]: r["count"] for r in rep["by_cpu"]} == dict(Counter(recs["cpu"].tolist()))
    assert {r["reason"]: r["count"] for r in rep["by_reason"]} == dict(Counter(recs["reason"].tolist()))
    ticks = (recs["tsc_resume"] - recs["tsc"]).astype(np.int64)
    for r in rep["by_cpu"]:
        t = ticks[recs["cpu"] == r["cpu"]]
        assert r["handling"]["min"] == pytest.approx(t.min() / 1e9)
        assert r["handling"]["max"] == pytest.approx(t.max() / 1e9)


def test_the_report_keeps_its_temporaries_on_the_heap_under_glibc() -> None:
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert tune_malloc() is glibc  # mallopt accepted both settings (never fails quietly on glibc)
