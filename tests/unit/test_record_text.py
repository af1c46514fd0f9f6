"""One record of every exit kind, on both back ends, reads the same in the TUI log, in gdb's hv-exits and
in ``hvtrace report``'s drill-downs.

Before hvtrace.decode.record_meaning the three wrote their own text and had drifted: "sub" / "subleaf",
"fn" / "hypercall", no text in gdb for STAGE2_FAULT and XSETBV, and the TUI printed a VMX exception's
whole interruption information as its vector. The expected operand text is written here by hand; the
qualification facts come from the manuals:

- SDM Vol. 3C 28.2.1 Table 28-3: CR-access qualification 0xA03 = MOV to CR3 (type 0) from R10.
- SDM Table 28-5: I/O qualification, size - 1 in bits 2:0, bit 3 direction (1 = IN), port in 31:16.
- SDM Table 28-7: EPT violation bit 1 = data write, bit 7 = linear address valid, bit 8 = the access
  was to the translated linear address.
- SDM 27.8: exit reason 33, VM-entry failure due to invalid guest state.
- SDM 25.9.2: VM-exit interruption information 0x80000B0E = valid, hardware exception, error code
  valid, vector 14.
- APM Vol. 2 15.10.2 Figure 15-2: IOIO EXITINFO1 bit 0 TYPE (1 = IN), bit 4 SZ8, port in 31:16.
- APM 15.11: MSR EXITINFO1 0 = RDMSR, 1 = WRMSR; 15.33: decode assists, EXITINFO1 bit 63 = MOV CRx,
  3:0 the GPR; 15.25.6: #NPF EXITINFO1 is a #PF error code (bit 1 W), EXITINFO2 the GPA.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from gdbext import model
from hvtrace.abi import HvExitKind, HvRecord, HvVendor
from hvtrace.trace.records import from_bytes
from hvtrace.trace.report import build_report, format_text
from hvtrace.trace.tracefile import TraceFile, TraceWriter
from tui.fmt import HEADER, format_record

K = HvExitKind


class Case(NamedTuple):
    kind: HvExitKind
    reason: int
    qual: int = 0
    arg0: int = 0
    arg1: int = 0
    gpa: int = 0
    operands: str = ""  # exactly
    facts: tuple[str, ...] = ()  # in the decoded qualification


VMX_CASES = (
    Case(K.OTHER, 7),  # interrupt window
    Case(K.CPUID, 10, arg0=0x7, operands="leaf 0x7 subleaf 0x0"),
    Case(K.MSR_READ, 31, arg0=0xC000_0080, operands="msr 0xc0000080"),  # IA32_EFER
    Case(K.MSR_WRITE, 32, arg0=0x1B, arg1=0xFEE0_0900, operands="msr 0x1b value 0xfee00900"),
    Case(
        K.CR_ACCESS, 28, qual=0xA03, arg0=3, arg1=0x1000, operands="CR3 value 0x1000", facts=("MOV CR3, R10",)
    ),
    Case(K.VMCALL, 18, arg0=1, arg1=7, operands="hypercall 0x1 (EXIT_COUNT) arg 0x7"),
    Case(K.INVD, 13),
    Case(K.EXCEPTION, 0, arg0=0x8000_0B0E, arg1=0x2, operands="vector 14 error 0x2"),
    Case(
        K.STAGE2_FAULT,
        48,
        qual=0x182,
        arg0=0x7FFF_F000,
        gpa=0xFEE0_0000,
        operands="gpa 0xfee00000 linear 0x7ffff000",
        facts=("access -w-", "GLA valid: the translated address"),
    ),
    Case(K.IO, 30, qual=0x03F8_0000, arg0=0x3F8, operands="port 0x3f8", facts=("OUT port 0x03f8", "1 byte")),
    Case(K.HLT, 12),
    Case(K.XSETBV, 55, arg0=0, arg1=0x7, operands="xcr 0x0 value 0x7"),
    Case(K.INIT, 3),
    Case(K.SIPI, 4, qual=0x10, facts=("SIPI vector 0x10",)),
    Case(K.TRIPLE_FAULT, 2),
    Case(K.ENTRY_FAILURE, 33, qual=0, facts=("invalid guest state",)),
    Case(K.VIRT_INSN, 19),  # VMCLEAR
)

SVM_CASES = (
    Case(K.OTHER, 0x60),  # INTR
    Case(K.CPUID, 0x72, arg0=0x8000_0001, arg1=0, operands="leaf 0x80000001 subleaf 0x0"),
    Case(K.MSR_READ, 0x7C, qual=0, arg0=0xC000_0080, operands="msr 0xc0000080", facts=("RDMSR",)),
    Case(K.MSR_WRITE, 0x7C, qual=1, arg0=0x1B, arg1=0x900, operands="msr 0x1b value 0x900", facts=("WRMSR",)),
    Case(
        K.CR_ACCESS,
        0x13,
        qual=1 << 63 | 10,
        arg0=3,
        arg1=0x2000,
        operands="CR3 value 0x2000",
        facts=("MOV CR3, R10",),
    ),
    Case(K.VMCALL, 0x81, arg0=0, arg1=0, operands="hypercall 0x0 (PING) arg 0x0"),
    Case(K.INVD, 0x76),
    Case(K.EXCEPTION, 0x4E, qual=0x2, arg0=14, arg1=0x2, operands="vector 14 error 0x2", facts=("#PF", "W")),
    Case(
        K.STAGE2_FAULT,
        0x400,
        qual=1 << 32 | 0x7,
        arg0=1 << 32 | 0x7,
        gpa=0xFEE0_0000,
        operands="gpa 0xfee00000 error 0x100000007",
        facts=("0xfee00000",),
    ),
    Case(K.IO, 0x7B, qual=0x0060_0011, arg0=0x60, operands="port 0x60", facts=("IN port 0x0060", "1 byte")),
    Case(K.HLT, 0x78),
    Case(K.XSETBV, 0x8D, arg0=0, arg1=0x3, operands="xcr 0x0 value 0x3"),
    Case(K.INIT, 0x63),
    Case(K.TRIPLE_FAULT, 0x7F),  # SHUTDOWN
    Case(K.ENTRY_FAILURE, 0xFFFF),  # VMEXIT_INVALID
    Case(K.VIRT_INSN, 0x80),  # VMRUN
)

CASES = {HvVendor.VMX: VMX_CASES, HvVendor.SVM: SVM_CASES}
RIP = 0x1234


def record(c: Case, seq: int) -> HvRecord:
    return HvRecord(
        seq=seq,
        tsc=1000 + seq,
        kind=c.kind,
        reason=c.reason,
        qual=c.qual,
        rip=RIP,
        gpa=c.gpa,
        arg0=c.arg0,
        arg1=c.arg1,
    )


def tui_detail(vendor: int, rec: HvRecord) -> str:
    line = format_record(from_bytes(bytes(rec))[0], vendor, 0, None)
    return line[HEADER.index("detail") :]


def gdb_detail(vendor: int, rec: HvRecord) -> str:
    line = model.record_line(vendor, rec)
    head = f"rip={RIP:#x}"
    assert head in line, line
    return line.split(head, 1)[1].strip()


def split(detail: str) -> tuple[str, str]:
    """(operands, qualification) of a detail text ``OPERANDS [QUALIFICATION]``."""
    ops, _, qual = detail.partition("[")
    return ops.strip(), qual.rstrip("]")


def test_every_kind_has_a_case_on_each_back_end() -> None:
    assert {c.kind for c in VMX_CASES} == set(HvExitKind)
    assert {c.kind for c in SVM_CASES} == set(HvExitKind) - {K.SIPI}  # AMD-V has no SIPI intercept


@pytest.mark.parametrize(
    ("vendor", "case"),
    [(v, c) for v, cases in CASES.items() for c in cases],
    ids=lambda x: getattr(x, "name", ""),
)
def test_tui_and_gdb_show_the_same_operands_and_qualification(vendor: HvVendor, case: Case) -> None:
    rec = record(case, 1)
    tui, gdb = tui_detail(vendor, rec), gdb_detail(vendor, rec)
    assert tui == gdb
    ops, qual = split(tui)
    assert ops == case.operands
    for fact in case.facts:
        assert fact in qual, (fact, qual)


@pytest.mark.parametrize("vendor", list(CASES))
def test_report_drilldowns_word_the_operand_as_the_log_does(vendor: HvVendor, tmp_path: Path) -> None:
    cases = CASES[vendor]
    recs = [record(c, i + 1) for i, c in enumerate(cases)]
    path = tmp_path / "one-of-each.hvt"
    with TraceWriter(path, {"vendor": int(vendor), "vendor_name": vendor.name, "cpus": 1}) as w:
        w.add(np.concatenate([from_bytes(bytes(r)) for r in recs]))
    tf = TraceFile.open(path)
    rep = build_report(tf)
    lines = format_text(rep).splitlines()
    titles = {
        K.CPUID: "CPUID leaf",
        K.MSR_READ: "MSR index (read)",
        K.MSR_WRITE: "MSR index (write)",
        K.CR_ACCESS: "CR number",
        K.IO: "I/O port",
        K.STAGE2_FAULT: "GPA page",
    }
    assert set(rep["drilldown"]) == set(titles.values())
    for kind, title in titles.items():
        rec = next(r for r in recs if r.kind == kind)
        at = next(i for i, ln in enumerate(lines) if ln.startswith(title))
        value_text = lines[at + 1][:22].strip()
        assert value_text
        # The drill-down's value is the log's first operand, word for word.
        assert tui_detail(vendor, rec).startswith(value_text), (value_text, tui_detail(vendor, rec))
        assert gdb_detail(vendor, rec).startswith(value_text)
