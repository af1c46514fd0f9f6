"""Stage-2 faults on the xAPIC page drill down by register (SDM Vol. 3A Table 11-1), other pages by page:
in the TUI's drill-down and in `hvtrace report` alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hvtrace.abi import HvExitKind, HvVendor
from hvtrace.decode.record_meaning import drill_key, drill_text, xapic_register
from hvtrace.decode.vendor import reason_code
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.trace.report import build_report, format_text
from hvtrace.trace.tracefile import TraceFile, TraceWriter
from hvtrace.tui.model import ExitStats

NPF = reason_code(int(HvVendor.SVM), "NPF")
GPAS = [0xFEE000B0] * 3 + [0xFEE00300, 0xFEE00304] + [0xFEE00380] + [0x1234567, 0x1234ABC]


def faults() -> np.ndarray:
    recs = np.zeros(len(GPAS), dtype=RECORD_DTYPE)
    recs["kind"] = int(HvExitKind.STAGE2_FAULT)
    recs["reason"] = NPF
    recs["gpa"] = GPAS
    recs["seq"] = np.arange(1, len(GPAS) + 1)
    recs["tsc"] = np.arange(len(GPAS)) * 1000
    return recs


def test_register_names_follow_the_sdm_table() -> None:
    assert xapic_register(0xFEE000B0) == "EOI"
    assert xapic_register(0xFEE00300) == "ICR low"
    assert xapic_register(0xFEE00310) == "ICR high"
    assert xapic_register(0xFEE00080) == "TPR"
    assert xapic_register(0xFEE00380) == "timer initial count"
    assert xapic_register(0xFEE00390) == "timer current count"
    assert xapic_register(0xFEE00320) == "LVT timer"
    assert xapic_register(0xFEE000F0) == "SVR"
    assert xapic_register(0xFEE01000) is None  # the next page
    assert drill_key(int(HvExitKind.STAGE2_FAULT), 0x1234567) == 0x1234000
    assert drill_key(int(HvExitKind.STAGE2_FAULT), 0xFEE00304) == 0xFEE00300
    assert drill_key(int(HvExitKind.CPUID), 0x1234567) == 0x1234567


def test_tui_drilldown_splits_the_apic_page_by_register() -> None:
    stats = ExitStats(cpus=1, vendor=HvVendor.SVM)
    stats.add(faults())
    assert NPF is not None
    drill = stats.drilldown((int(HvExitKind.STAGE2_FAULT) << 16) | NPF, None)
    assert drill is not None
    rows = [(r.value, r.count, r.text) for r in drill[1]]
    assert rows == [
        (0xFEE000B0, 3, "gpa 0xfee000b0 (xAPIC EOI)"),
        (0x1234000, 2, "gpa 0x1234000"),
        (0xFEE00300, 2, "gpa 0xfee00300 (xAPIC ICR low)"),
        (0xFEE00380, 1, "gpa 0xfee00380 (xAPIC timer initial count)"),
    ]
    assert drill_text(int(HvExitKind.STAGE2_FAULT), 0x1234000) == "gpa 0x1234000"


def test_report_drilldown_splits_the_apic_page_by_register(tmp_path: Path) -> None:
    path = tmp_path / "apic.hvt"
    with TraceWriter(path, {"vendor": int(HvVendor.SVM), "vendor_name": "SVM", "cpus": 1}) as w:
        w.add(faults())
    rep = build_report(TraceFile.open(path))
    rows = {r["value"]: r["count"] for r in rep["drilldown"]["GPA page"]}
    assert rows == {0xFEE000B0: 3, 0xFEE00300: 2, 0xFEE00380: 1, 0x1234000: 2}
    text = format_text(rep)
    assert "gpa 0xfee000b0 (xAPIC EOI)" in text
    assert "gpa 0xfee00300 (xAPIC ICR low)" in text
