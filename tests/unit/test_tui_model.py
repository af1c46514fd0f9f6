"""The TUI's numpy aggregation and recent-exits log against plain Python counting (no emulator)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from hvtrace.abi import HvExitKind, HvVendor
from hvtrace.trace.records import RECORD_DTYPE, Records
from hvtrace.tui.model import ExitStats, summary
from hvtrace.tui.recent import LogFilter, RecentLog

CPUID_SVM = 0x72
MSR_SVM = 0x7C


def make(n: int, seed: int = 1, start_seq: int = 1) -> Records:
    rng = np.random.default_rng(seed)
    recs = np.zeros(n, dtype=RECORD_DTYPE)
    recs["seq"] = np.arange(start_seq, start_seq + n)
    recs["tsc"] = np.arange(n, dtype=np.uint64) * 1000 + 5000
    recs["cpu"] = rng.integers(0, 3, n)
    is_msr = rng.random(n) < 0.25
    recs["kind"] = np.where(is_msr, int(HvExitKind.MSR_READ), int(HvExitKind.CPUID))
    recs["reason"] = np.where(is_msr, MSR_SVM, CPUID_SVM)
    recs["arg0"] = np.where(is_msr, 0xC0000080, rng.integers(0, 4, n))
    recs["rip"] = 0x100000 + rng.integers(0, 16, n)
    return recs


def test_counts_per_cpu_and_reason_match_python_counting() -> None:
    stats = ExitStats(cpus=1, vendor=HvVendor.SVM)
    a, b = make(5000, 1), make(7000, 2, 5001)
    stats.add(a)
    stats.add(b)
    both = np.concatenate([a, b])
    assert stats.records == 12000
    assert stats.cpus == 3  # grown from the records
    want = Counter(zip(both["cpu"].tolist(), both["reason"].tolist(), strict=True))
    for cpu in range(3):
        counts = stats.scope_counts(cpu)
        for slot, key in enumerate(stats.keys):
            assert counts[slot] == want[(cpu, key & 0xFFFF)]
    assert summary(stats) == {
        "CPUID": int((both["reason"] == CPUID_SVM).sum()),
        "MSR": int((both["reason"] == MSR_SVM).sum()),
    }


def test_drilldown_by_cpuid_leaf_and_msr_index() -> None:
    stats = ExitStats(cpus=3, vendor=HvVendor.SVM)
    recs = make(4000)
    stats.add(recs)
    cpuid_key = int(HvExitKind.CPUID) << 16 | CPUID_SVM
    dd = stats.drilldown(cpuid_key, None)
    assert dd is not None
    title, rows = dd
    assert title == "CPUID leaf"
    sel = recs[recs["kind"] == HvExitKind.CPUID]
    assert {r.value: r.count for r in rows} == dict(Counter(sel["arg0"].tolist()))
    assert rows == sorted(rows, key=lambda r: -r.count)
    dd1 = stats.drilldown(cpuid_key, 1)
    assert dd1 is not None
    assert sum(r.count for r in dd1[1]) == int((sel["cpu"] == 1).sum())
    msr = stats.drilldown(int(HvExitKind.MSR_READ) << 16 | MSR_SVM, None)
    assert msr is not None
    assert [r.value for r in msr[1]] == [0xC0000080]
    assert [r.text for r in msr[1]] == ["msr 0xc0000080"]  # as the log words the operand
    assert stats.drilldown(int(HvExitKind.HLT) << 16 | 0x78, None) is None


def test_rates_and_sparkline_follow_the_clock() -> None:
    stats = ExitStats(cpus=3, vendor=HvVendor.SVM)
    stats.tick(0.0)
    for t in range(1, 5):
        stats.add(make(1000, t))
        stats.tick(float(t))
    assert stats.sparkline(None) == [1000.0, 1000.0, 1000.0, 1000.0]
    assert abs(float(stats.scope_rates(None).sum()) - 1000.0) < 1e-6
    stats.tick(6.0)  # nothing for two seconds
    assert stats.sparkline(None)[-1] == 0.0
    assert float(stats.scope_rates(None).sum()) == 0.0


def test_recent_log_keeps_the_newest_and_filters_incrementally() -> None:
    log = RecentLog(1000, HvVendor.SVM)
    recs = make(2500)
    log.set_filter(LogFilter(cpus=frozenset({1}), reason=re.compile("msr", re.IGNORECASE)))
    for i in range(0, 2500, 300):
        log.append(recs[i : i + 300])
    newest = recs[-1000:]
    want = newest[(newest["cpu"] == 1) & (newest["reason"] == MSR_SVM)]
    assert len(log) == len(want)
    assert (log.rows(0, len(log))["seq"] == want["seq"]).all()
    log.set_filter(LogFilter())
    assert len(log) == 1000
    assert (log.rows(0, 1000)["seq"] == newest["seq"]).all()
    assert len(log.rows(990, 50)) == 10  # clipped at the end


def test_recent_log_search_by_value_and_reason() -> None:
    log = RecentLog(100, HvVendor.SVM)
    recs = make(100)
    recs["rip"][42] = 0xDEADBEEF
    log.append(recs)
    assert log.search("0xdeadbeef", -1) == 42
    assert log.search("deadbeef", 42) == 42  # wraps around to the only hit
    first_msr = int(np.flatnonzero(recs["reason"] == MSR_SVM)[0])
    assert log.search("^MSR$", -1) == first_msr
    assert log.search("no-such-reason", -1) is None


def test_a_million_records_stay_cheap() -> None:
    log = RecentLog(1 << 20, HvVendor.SVM)
    stats = ExitStats(cpus=3, vendor=HvVendor.SVM)
    big = make(1 << 20)
    stats.add(big)
    log.append(big)
    log.set_filter(LogFilter(reason=re.compile("CPUID")))
    assert len(log) == int((big["reason"] == CPUID_SVM).sum())
    assert len(log.rows(len(log) - 40, 40)) == 40
