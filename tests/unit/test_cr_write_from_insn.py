"""SVM without decode assists: a CR access is named by the instruction at RIP where its bytes are known
(the TUI's log and a replay's), never guessed as LMSW/CLTS next to a `mov cr0, rbx`."""

from __future__ import annotations

import numpy as np

from hvtrace.abi import HvExitKind, HvVendor
from hvtrace.decode.record_meaning import detail
from hvtrace.trace.code import CodeCache, CodeMap
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.tui.fmt import format_record

SVM = int(HvVendor.SVM)
CR0_WRITE, CR4_WRITE, CR4_READ = 0x10, 0x14, 0x04  # VMEXIT_CR0_WRITE etc. (APM Vol. 2 Appendix C)
MOV_CR0_RBX = bytes.fromhex("0f22c3")  # mov cr0, rbx
MOV_CR4_RAX = bytes.fromhex("0f22e0")  # mov cr4, rax
RIP = 0x101000


def cr_detail(reason: int, insn: str | None = None) -> str:
    return detail(
        SVM, int(HvExitKind.CR_ACCESS), reason, qual=0, arg0=reason & 0xF, arg1=0x80050033, gpa=0, insn=insn
    )


def test_without_the_instruction_every_possible_instruction_is_named() -> None:
    assert "CR0 write (MOV, LMSW or CLTS: no decode assist)" in cr_detail(CR0_WRITE)
    assert "CR4 write (MOV: no decode assist)" in cr_detail(CR4_WRITE)
    assert "CR4 read (MOV: no decode assist)" in cr_detail(CR4_READ)
    assert "LMSW or CLTS (" not in cr_detail(CR0_WRITE)


def test_decode_assist_gpr_still_wins() -> None:
    info1 = 1 << 63 | 3  # MOV with RBX (EXITINFO1[63] valid, [3:0] GPR)
    text = detail(SVM, int(HvExitKind.CR_ACCESS), CR0_WRITE, qual=info1, arg0=0, arg1=0, gpa=0, insn="clts")
    assert "MOV CR0, RBX" in text
    assert "clts" not in text


def test_the_log_names_the_cr_write_from_the_instruction_bytes() -> None:
    recs = np.zeros(2, RECORD_DTYPE)
    recs["kind"] = int(HvExitKind.CR_ACCESS)
    recs["reason"] = [CR0_WRITE, CR4_WRITE]
    recs["arg0"] = [0, 4]
    recs["rip"] = [RIP, RIP + 0x10]
    recs["insn_len"] = 3
    code = CodeCache(CodeMap({RIP: MOV_CR0_RBX, RIP + 0x10: MOV_CR4_RAX}))
    cr0 = format_record(recs[0], SVM, 0, None, code)
    cr4 = format_record(recs[1], SVM, 0, None, code)
    assert "[mov cr0, rbx (from the instruction bytes: no decode assist)]" in cr0
    assert "[mov cr4, rax (from the instruction bytes: no decode assist)]" in cr4
    assert "LMSW" not in cr0
    # Unknown bytes: the generic wording, not a guess.
    unknown = format_record(recs[0], SVM, 0, None, CodeCache(CodeMap({})))
    assert "CR0 write (MOV, LMSW or CLTS: no decode assist)" in unknown
