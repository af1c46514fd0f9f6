"""One log line per record (called only for the rows on screen): time, CPU, reason, RIP, the guest
instruction at RIP (disassembled, cached per RIP: hvtrace.trace.code), operands and decoded qualification.
"""

from __future__ import annotations

from typing import Any

from hvtrace.abi import HvExitKind, HvVendor
from hvtrace.decode import svm_vmcb, vmx_exits
from hvtrace.trace.code import CodeCache

from .model import reason_info

INSN_WIDTH = 30  # the instruction column; longer text is cut with "…"
HEADER = f"{'time':>14}  {'cpu':>3}  {'reason':<18} {'rip':>18}  {'instruction':<{INSN_WIDTH}}  detail"


def operands(kind: int, arg0: int, arg1: int, gpa: int) -> str:
    """The record's operands by kind (the conventions of the exit handlers' record_operands)."""
    if kind == HvExitKind.CPUID:
        return f"leaf {arg0:#x} sub {arg1:#x}"
    if kind == HvExitKind.MSR_READ:
        return f"msr {arg0:#x}"
    if kind == HvExitKind.MSR_WRITE:
        return f"msr {arg0:#x} = {arg1:#x}"
    if kind == HvExitKind.CR_ACCESS:
        return f"CR{arg0} value {arg1:#x}"
    if kind == HvExitKind.IO:
        return f"port {arg0:#x}"
    if kind == HvExitKind.VMCALL:
        return f"fn {arg0:#x} arg {arg1:#x}"
    if kind == HvExitKind.STAGE2_FAULT:
        return f"gpa {gpa:#x}"
    if kind == HvExitKind.XSETBV:
        return f"xcr {arg0:#x}"
    if kind == HvExitKind.EXCEPTION:
        return f"vector {arg0} error {arg1:#x}"
    return ""


def decode_qual(vendor: int, reason: int, qual: int, gpa: int) -> str:
    try:
        if vendor == HvVendor.VMX:
            return vmx_exits.describe_qualification(reason, qual) or ""
        if vendor == HvVendor.SVM:
            code = svm_vmcb.exit_code_from_record(reason)
            return "; ".join(svm_vmcb.describe_exitinfo(code, qual, gpa))
    except (ValueError, KeyError, IndexError):
        return f"qual {qual:#x}"
    return ""


def format_time(tsc: int, base_tsc: int, tsc_hz: float | None) -> str:
    if tsc_hz:
        return f"{(tsc - base_tsc) / tsc_hz:14.6f}"
    return f"{tsc - base_tsc:14d}"


def fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_record(
    rec: Any, vendor: int, base_tsc: int, tsc_hz: float | None, code: CodeCache | None = None
) -> str:
    """``rec`` is one numpy record (RECORD_DTYPE); ``code`` gives the instruction at its RIP (blank
    without one, "?" when the bytes are unknown)."""
    kind, reason = int(rec["kind"]), int(rec["reason"])
    info = reason_info(vendor, kind << 16 | reason)
    arg0, arg1, gpa = int(rec["arg0"]), int(rec["arg1"]), int(rec["gpa"])
    detail = operands(kind, arg0, arg1, gpa)
    dq = decode_qual(vendor, reason, int(rec["qual"]), gpa)
    if dq:
        detail = f"{detail}  [{dq}]" if detail else dq
    t = format_time(int(rec["tsc"]), base_tsc, tsc_hz)
    rip = int(rec["rip"])
    insn = fit(code.text(rip, int(rec["insn_len"])), INSN_WIDTH) if code is not None else ""
    return f"{t}  {int(rec['cpu']):>3}  {info.name[:18]:<18} {rip:#18x}  {insn:<{INSN_WIDTH}}  {detail}"
