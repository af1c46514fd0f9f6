"""`hvtrace top`'s counting and its two text forms (table, log line): sorted busiest first."""

from __future__ import annotations

import numpy as np

from hvtrace.abi import HvVendor
from hvtrace.decode.vendor import reason_code
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.trace.top_counts import Interval, log_line, table

SVM = int(HvVendor.SVM)


def records(cpu_reason_tsc: list[tuple[int, str, int]]) -> np.ndarray:
    recs = np.zeros(len(cpu_reason_tsc), dtype=RECORD_DTYPE)
    for i, (cpu, name, tsc) in enumerate(cpu_reason_tsc):
        code = reason_code(SVM, name)
        assert code is not None
        recs[i]["cpu"], recs[i]["reason"], recs[i]["tsc"] = cpu, code, tsc
    return recs


def test_counts_over_batches_sorted_busiest_first() -> None:
    iv = Interval(vendor=SVM, seconds=2.0)
    iv.add(records([(0, "CPUID", 50), (1, "MSR", 40), (1, "CPUID", 70)]))
    iv.add(records([]))
    iv.add(records([(1, "CPUID", 90), (0, "HLT", 30)]))
    assert iv.total == 5
    assert iv.cpus() == [(1, 3), (0, 2)]
    assert iv.reasons() == [("CPUID", 3), ("HLT", 1), ("MSR", 1)]
    assert (iv.tsc_first, iv.tsc_last) == (30, 90)

    lines = table(iv, cpus=2, vendor_name="SVM")
    assert lines[0].startswith("hvtrace top: 2 CPUs (SVM), interval 2.00 s, 5 exits, 2/s")
    assert lines[1] == "window: tsc 30..90"
    reason_rows = lines[lines.index(next(x for x in lines if x.startswith("REASON"))) + 1 :]
    assert [r.split()[:3] for r in reason_rows] == [["CPUID", "3", "2"], ["HLT", "1", "0"], ["MSR", "1", "0"]]

    assert log_line(iv, "T") == "T total=5 rate=2/s lost=0 cpu1=3 cpu0=2 CPUID=3 HLT=1 MSR=1"
