"""What an exit record means, written once: kind names, the operand conventions and their text, the
qualification by back end, the drill-down operand per kind, the discovery-header checks and reading
ring slots with their sequence check. The TUI log, gdb's hv-exits, ``hvtrace report`` and discovery
all render and check records through this module, so their wording cannot drift apart.

Operand conventions (abi.h struct hv_record; hv/core/exit_common.c exit_record_gpr_operands() and the
back ends' record_operands()):

==============  =========================================  =============================================
kind            arg0                                       arg1
==============  =========================================  =============================================
CPUID           leaf (EAX)                                 subleaf (ECX)
MSR_READ        MSR index (ECX)                            -
MSR_WRITE       MSR index (ECX)                            value (EDX:EAX)
XSETBV          XCR number (ECX)                           value (EDX:EAX)
CR_ACCESS       CR number                                  value of a MOV to CR
IO              port                                       RAX (the value of an OUT)
VMCALL          hypercall function (RAX)                   argument (RBX)
EXCEPTION       vector in bits 7:0 (VMX: the whole         error code
                VM-exit interruption information)
STAGE2_FAULT    VMX: guest linear address; SVM: #NPF        -  (the faulting GPA is in ``gpa``)
                error code (Vendor.stage2_arg0)
==============  =========================================  =============================================

Stdlib only (gdb's Python imports it).
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from typing import Any, Final

from hvtrace.abi import (
    HV_ABI_VERSION,
    HV_DISCOVERY_MAGIC,
    HV_MAX_CPUS,
    HV_RECORD_SIZE,
    HvDiscovery,
    HvExitKind,
    HvHypercall,
    HvRecord,
)
from hvtrace.decode.svm_exits import NO_DECODE_ASSIST
from hvtrace.decode.vendor import Vendor, vendor_of

Reader = Callable[[int, int], bytes]

#: Kind number -> name (HV_EXIT_*).
KIND_NAMES: Final[dict[int, str]] = {int(k): k.name for k in HvExitKind}


def kind_name(kind: int) -> str:
    return KIND_NAMES.get(kind, f"KIND_{kind}")


# ---- operands --------------------------------------------------------------------------------------


def _hypercall(function: int) -> str:
    try:
        return f"hypercall {function:#x} ({HvHypercall(function).name})"
    except ValueError:
        return f"hypercall {function:#x}"


def _gpa(gpa: int) -> str:
    reg = xapic_register(gpa)
    return f"gpa {gpa:#x}" + (f" (xAPIC {reg})" if reg is not None else "")


#: Per kind, the text of its first operand (arg0; STAGE2_FAULT: gpa), the one drill-downs count by.
_FIRST: Final[dict[int, Callable[[int], str]]] = {
    HvExitKind.CPUID: lambda v: f"leaf {v:#x}",
    HvExitKind.MSR_READ: lambda v: f"msr {v:#x}",
    HvExitKind.MSR_WRITE: lambda v: f"msr {v:#x}",
    HvExitKind.XSETBV: lambda v: f"xcr {v:#x}",
    HvExitKind.CR_ACCESS: lambda v: f"CR{v}",
    HvExitKind.IO: lambda v: f"port {v:#x}",
    HvExitKind.VMCALL: _hypercall,
    HvExitKind.EXCEPTION: lambda v: f"vector {v & 0xFF}",
    HvExitKind.STAGE2_FAULT: _gpa,
}
#: Per kind, the label of its second operand (arg1; STAGE2_FAULT: arg0, labelled by the back end).
_SECOND: Final[dict[int, str]] = {
    HvExitKind.CPUID: "subleaf",
    HvExitKind.MSR_WRITE: "value",
    HvExitKind.XSETBV: "value",
    HvExitKind.CR_ACCESS: "value",
    HvExitKind.VMCALL: "arg",
    HvExitKind.EXCEPTION: "error",
}


def operands(vendor: Vendor | int, kind: int, arg0: int, arg1: int, gpa: int) -> str:
    """The record's operands as text, by kind (the conventions in this module's docstring)."""
    first = _FIRST.get(kind)
    if first is None:
        return f"arg0 {arg0:#x} arg1 {arg1:#x}" if arg0 or arg1 else ""
    if kind == HvExitKind.STAGE2_FAULT:
        v = vendor if isinstance(vendor, Vendor) else vendor_of(vendor)
        return f"{first(gpa)} {v.stage2_arg0} {arg0:#x}"
    label = _SECOND.get(kind)
    return f"{first(arg0)} {label} {arg1:#x}" if label else first(arg0)


def detail(
    vendor: Vendor | int,
    kind: int,
    reason: int,
    *,
    qual: int,
    arg0: int,
    arg1: int,
    gpa: int,
    insn: str | None = None,
) -> str:
    """Operands, then the decoded qualification in brackets: the record's detail wherever it is shown.

    ``insn``: the guest instruction at RIP, disassembled, where the caller has its bytes (the TUI, a
    replay): a CR access the qualification cannot name (SVM without decode assists) is named by it."""
    v = vendor if isinstance(vendor, Vendor) else vendor_of(vendor)
    ops = operands(v, kind, arg0, arg1, gpa)
    q = v.qualification(reason, qual, gpa)
    if insn and kind == HvExitKind.CR_ACCESS and NO_DECODE_ASSIST in q:
        q = f"{insn} (from the instruction bytes: {NO_DECODE_ASSIST})"
    if not q:
        return ops
    return f"{ops} [{q}]" if ops else f"[{q}]"


def record_detail(vendor: Vendor | int, rec: HvRecord) -> str:
    return detail(vendor, rec.kind, rec.reason, qual=rec.qual, arg0=rec.arg0, arg1=rec.arg1, gpa=rec.gpa)


# ---- drill-downs -----------------------------------------------------------------------------------

#: Drill-down per kind: (title, record field, shift): the operand a breakdown of that kind counts by
#: (``field >> shift``, then :func:`drill_key`).
DRILLDOWNS: Final[dict[int, tuple[str, str, int]]] = {
    HvExitKind.CPUID: ("CPUID leaf", "arg0", 0),
    HvExitKind.MSR_READ: ("MSR index (read)", "arg0", 0),
    HvExitKind.MSR_WRITE: ("MSR index (write)", "arg0", 0),
    HvExitKind.CR_ACCESS: ("CR number", "arg0", 0),
    HvExitKind.IO: ("I/O port", "arg0", 0),
    HvExitKind.STAGE2_FAULT: ("GPA page", "gpa", 0),  # by page; the xAPIC page by register (drill_key)
}

#: The xAPIC page at its default base (IA32_APIC_BASE), and its registers by offset: SDM Vol. 3A
#: Table 11-1 (Local APIC Register Address Map). ISR/TMR/IRR are eight 32-bit words each.
XAPIC_PAGE: Final = 0xFEE00000
XAPIC_REGISTERS: Final[dict[int, str]] = {
    0x020: "ID",
    0x030: "version",
    0x080: "TPR",
    0x090: "APR",
    0x0A0: "PPR",
    0x0B0: "EOI",
    0x0C0: "RRD",
    0x0D0: "LDR",
    0x0E0: "DFR",
    0x0F0: "SVR",
    **{0x100 + 0x10 * i: f"ISR[{32 * i}:{32 * i + 31}]" for i in range(8)},
    **{0x180 + 0x10 * i: f"TMR[{32 * i}:{32 * i + 31}]" for i in range(8)},
    **{0x200 + 0x10 * i: f"IRR[{32 * i}:{32 * i + 31}]" for i in range(8)},
    0x280: "ESR",
    0x2F0: "LVT CMCI",
    0x300: "ICR low",
    0x310: "ICR high",
    0x320: "LVT timer",
    0x330: "LVT thermal",
    0x340: "LVT perf counters",
    0x350: "LVT LINT0",
    0x360: "LVT LINT1",
    0x370: "LVT error",
    0x380: "timer initial count",
    0x390: "timer current count",
    0x3E0: "timer divide config",
}


def drill_key(kind: int, value: Any) -> Any:
    """What a drill-down counts by, from ``field >> shift`` (an int or a numpy array: operators only,
    this module is stdlib only): a stage-2 fault's GPA page, except in the xAPIC page, which is split
    by register (16-byte aligned offset), so an APIC-heavy guest shows EOI, ICR, timer counts."""
    if kind != HvExitKind.STAGE2_FAULT:
        return value
    page = (value >> 12) << 12
    return page + (page == XAPIC_PAGE) * (value & 0xFF0)


def xapic_register(gpa: int) -> str | None:
    """The xAPIC register a GPA in the xAPIC page addresses (SDM Vol. 3A Table 11-1), else None."""
    if gpa >> 12 != XAPIC_PAGE >> 12:
        return None
    return XAPIC_REGISTERS.get(gpa & 0xFF0)


def drill_text(kind: int, value: int) -> str:
    """A drill-down value worded as operands() words the kind's first operand (a GPA page by its address;
    an xAPIC register by its address and name)."""
    first = _FIRST.get(kind)
    return first(value) if first else f"{value:#x}"


# ---- the discovery header --------------------------------------------------------------------------

DISCOVERY_SIZE: Final = ctypes.sizeof(HvDiscovery)


class HeaderError(ValueError):
    """A discovery header that is not one these tools read. ``problem``: "truncated", "magic", "abi"
    (another ABI: version or sizes) or "implausible"; the message names no location (callers add it)."""

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


def check_header(data: bytes) -> HvDiscovery:
    """The header in ``data``, checked: magic, ABI version, header size, record size, CPU count."""
    if len(data) < DISCOVERY_SIZE:
        raise HeaderError("truncated", "truncated discovery header")
    h = HvDiscovery.from_buffer_copy(data[:DISCOVERY_SIZE])
    if h.magic != HV_DISCOVERY_MAGIC:
        raise HeaderError("magic", f"no discovery magic (read {h.magic:#x}): not hvtrace memory")
    if h.abi_version != HV_ABI_VERSION:
        raise HeaderError(
            "abi", f"hypervisor ABI version {h.abi_version}, these tools read version {HV_ABI_VERSION}"
        )
    if h.header_size != DISCOVERY_SIZE:
        raise HeaderError(
            "abi", f"discovery header size {h.header_size}, expected {DISCOVERY_SIZE} (ABI mismatch)"
        )
    # hv/core/trace.c sets record_size when tracing starts: 0 before.
    if h.record_size not in (0, HV_RECORD_SIZE):
        raise HeaderError("abi", f"record size {h.record_size}, expected {HV_RECORD_SIZE}")
    if h.cpu_count > HV_MAX_CPUS:
        raise HeaderError("implausible", f"implausible CPU count {h.cpu_count}")
    return h


# ---- ring slots ------------------------------------------------------------------------------------

#: Largest ring the readers accept (records); the hypervisor's default is HV_RING_DEFAULT_CAPACITY.
MAX_RING_CAPACITY: Final = 1 << 24


def capacity_problem(capacity: int) -> str | None:
    """Why a ring capacity cannot be read (a power of two up to MAX_RING_CAPACITY), or None."""
    if capacity < 1 or capacity & (capacity - 1) or capacity > MAX_RING_CAPACITY:
        return f"bad capacity {capacity}"
    return None


def ring_slot(seq: int, capacity: int) -> int:
    """The slot of record ``seq`` (sequence numbers start at 1; hv/core/ring.c)."""
    return (seq - 1) & (capacity - 1)


def slot_runs(first_seq: int, count: int, capacity: int) -> list[tuple[int, int, int]]:
    """(first seq, first slot, length) of the contiguous runs holding ``count`` records from
    ``first_seq``: one run, or two when the ring wraps."""
    runs = []
    seq, left = first_seq, min(count, capacity)
    while left > 0:
        slot = ring_slot(seq, capacity)
        n = min(left, capacity - slot)
        runs.append((seq, slot, n))
        seq, left = seq + n, left - n
    return runs


_SEQ = struct.Struct("<Q")  # hv_record.seq: the first field


def read_records(
    read: Reader, records_paddr: int, capacity: int, first_seq: int, count: int
) -> list[HvRecord]:
    """Records ``first_seq`` .. ``first_seq + count - 1`` of a ring whose slots start at
    ``records_paddr``, oldest first. The producer writes seq = 0, the fields, seq = n; a record is
    taken only if its copied seq and a re-read seq are both n (a slot being rewritten reads 0 or
    n + capacity, never n again), so a record is never returned torn or replaced."""
    out: list[HvRecord] = []
    size = HV_RECORD_SIZE
    for seq0, slot, n in slot_runs(first_seq, count, capacity):
        paddr = records_paddr + slot * size
        data = read(paddr, n * size)
        again = read(paddr, n * size)
        for i in range(n):
            seq = seq0 + i
            chunk = data[i * size : (i + 1) * size]
            if _SEQ.unpack_from(chunk)[0] == seq and _SEQ.unpack_from(again, i * size)[0] == seq:
                out.append(HvRecord.from_buffer_copy(chunk))
    return out
