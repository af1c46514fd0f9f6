"""AMD-V #VMEXIT codes and their EXITINFO1/2 decoders.

Sources: AMD64 Architecture Programmer's Manual Vol. 2 (pub. 24593, rev. 3.41-3.42):
- Appendix C "SVM Intercept Exit Codes", Table C-1;
- 15.10.2 IOIO intercept EXITINFO1 (Figure 15-2); 15.11 MSR intercept (EXITINFO1 0 = RDMSR, 1 = WRMSR);
  15.12.x exception intercepts (#PF: EXITINFO1 error code, EXITINFO2 faulting address); 15.14.x task
  switch; 15.20 EVENTINJ (Figure 15-4; EXITINTINFO has the same format); 15.25.6 #NPF (EXITINFO1 a
  page-fault error code plus bit 32 "final guest-physical address", bit 33 "guest page tables";
  EXITINFO2 the guest-physical address); 15.33 decode assists (MOV CRx/DRx: EXITINFO1 bit 63 MOV,
  3:0 GPR).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from hvtrace.decode.vmx_controls import BitNames, bit_names, vector_name

# ---- exit codes (Appendix C, Table C-1) ------------------------------------------------------------

_EXCP_MNEMONICS: Final = (
    "DE", "DB", "NMI", "BP", "OF", "BR", "UD", "NM", "DF", "9", "TS", "NP", "SS", "GP", "PF", "15",
    "MF", "AC", "MC", "XF", "20", "CP", "22", "23", "24", "25", "26", "27", "HV", "VC", "SX", "31",
)  # fmt: skip

U64: Final = (1 << 64) - 1


_MISC_A0: Final = ("INVLPGB", "INVLPGB_ILLEGAL", "INVPCID", "MCOMMIT", "TLBSYNC", "BUS_LOCK", "IDLE_HLT")


def _build_exit_codes() -> dict[int, str]:
    codes: dict[int, str] = {}
    for n in range(16):
        codes[0x00 + n] = f"CR{n}_READ"
        codes[0x10 + n] = f"CR{n}_WRITE"
        codes[0x20 + n] = f"DR{n}_READ"
        codes[0x30 + n] = f"DR{n}_WRITE"
        codes[0x90 + n] = f"CR{n}_WRITE_TRAP"
    for v, m in enumerate(_EXCP_MNEMONICS):
        codes[0x40 + v] = f"EXCP_{m}"
    misc = (
        "INTR",
        "NMI",
        "SMI",
        "INIT",
        "VINTR",
        "CR0_SEL_WRITE",
        "IDTR_READ",
        "GDTR_READ",
        "LDTR_READ",
        "TR_READ",
        "IDTR_WRITE",
        "GDTR_WRITE",
        "LDTR_WRITE",
        "TR_WRITE",
        "RDTSC",
        "RDPMC",
        "PUSHF",
        "POPF",
        "CPUID",
        "RSM",
        "IRET",
        "SWINT",
        "INVD",
        "PAUSE",
        "HLT",
        "INVLPG",
        "INVLPGA",
        "IOIO",
        "MSR",
        "TASK_SWITCH",
        "FERR_FREEZE",
        "SHUTDOWN",
        "VMRUN",
        "VMMCALL",
        "VMLOAD",
        "VMSAVE",
        "STGI",
        "CLGI",
        "SKINIT",
        "RDTSCP",
        "ICEBP",
        "WBINVD",
        "MONITOR",
        "MWAIT",
        "MWAIT_CONDITIONAL",
        "XSETBV",
        "RDPRU",
        "EFER_WRITE_TRAP",
    )
    for i, name in enumerate(misc):
        codes[0x60 + i] = name
    for i, name in enumerate(_MISC_A0):
        codes[0xA0 + i] = name
    codes.update(
        {
            0x400: "NPF",
            0x401: "AVIC_INCOMPLETE_IPI",
            0x402: "AVIC_NOACCEL",
            0x403: "VMGEXIT",
            U64: "VMEXIT_INVALID",  # -1
            U64 - 1: "VMEXIT_BUSY",  # -2
        }
    )
    return codes


#: EXITCODE (as an unsigned 64-bit value) -> name.
EXIT_CODES: Final[Mapping[int, str]] = _build_exit_codes()
NAME_TO_EXIT_CODE: Final[Mapping[str, int]] = {n: c for c, n in EXIT_CODES.items()}
VMEXIT_INVALID: Final = U64
#: hv_record.reason is 16 bits: 0xffff there stands for VMEXIT_INVALID (abi.h).
RECORD_INVALID: Final = 0xFFFF


def exit_code_name(code: int) -> str:
    """Name of an EXITCODE; negative codes (-1 VMEXIT_INVALID) are accepted as such."""
    return EXIT_CODES.get(code & U64, "UNKNOWN")


def exit_code_from_record(reason: int) -> int:
    """A truncated EXITCODE back to the full one: hv_record.reason (16 bits, 0xffff) and
    hv_snapshot.exit_reason (32 bits, 0xffffffff) both stand for VMEXIT_INVALID (-1)."""
    return VMEXIT_INVALID if reason in (RECORD_INVALID, 0xFFFF_FFFF) else reason


# ---- EXITINFO decoders -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IoioInfo:
    """EXITINFO1 of an IOIO intercept (APM Vol. 2 15.10.2, Figure 15-2)."""

    is_in: bool  # bit 0 TYPE: 1 = IN
    string: bool  # bit 2
    rep: bool  # bit 3
    size: int  # bytes, from SZ8 / SZ16 / SZ32 (bits 4-6)
    address_size: int  # bits, from A16 / A32 / A64 (bits 7-9)
    segment: int  # bits 12:10 (string instructions)
    port: int  # bits 31:16

    def describe(self) -> str:
        base = ("INS" if self.is_in else "OUTS") if self.string else ("IN" if self.is_in else "OUT")
        rep = "REP " if self.rep else ""
        return f"{rep}{base} port {self.port:#06x}, {self.size} byte{'s' * (self.size > 1)}"


def decode_ioio(info1: int) -> IoioInfo:
    size = 4 if info1 >> 6 & 1 else 2 if info1 >> 5 & 1 else 1
    asize = 64 if info1 >> 9 & 1 else 32 if info1 >> 8 & 1 else 16
    return IoioInfo(
        is_in=bool(info1 & 1),
        string=bool(info1 >> 2 & 1),
        rep=bool(info1 >> 3 & 1),
        size=size,
        address_size=asize,
        segment=info1 >> 10 & 7,
        port=info1 >> 16 & 0xFFFF,
    )


NPF_BITS: Final[BitNames] = {
    0: "P",
    1: "RW",
    2: "US",
    3: "RSV",
    4: "ID",
    5: "PK",
    6: "SS",
    31: "RMP",
    32: "FINAL_GPA",
    33: "PAGE_TABLE_WALK",
}


@dataclass(frozen=True)
class NpfInfo:
    """#NPF: EXITINFO1 error code (APM Vol. 2 15.25.6), EXITINFO2 the guest-physical address."""

    present: bool
    write: bool
    user: bool
    reserved: bool
    fetch: bool
    final_translation: bool  # bit 32: fault on the final guest-physical address
    table_walk: bool  # bit 33: fault while walking the guest's page tables
    gpa: int
    flags: tuple[str, ...]

    def describe(self) -> str:
        access = "fetch" if self.fetch else "write" if self.write else "read"
        cause = "protection" if self.present else "not present"
        where = (
            "final translation"
            if self.final_translation
            else "guest page-table walk"
            if self.table_walk
            else "unspecified stage"
        )
        return f"{access} at GPA {self.gpa:#x}, {cause}, {where} [{' '.join(self.flags)}]"


def decode_npf(info1: int, info2: int) -> NpfInfo:
    return NpfInfo(
        present=bool(info1 & 1),
        write=bool(info1 >> 1 & 1),
        user=bool(info1 >> 2 & 1),
        reserved=bool(info1 >> 3 & 1),
        fetch=bool(info1 >> 4 & 1),
        final_translation=bool(info1 >> 32 & 1),
        table_walk=bool(info1 >> 33 & 1),
        gpa=info2,
        flags=tuple(bit_names(info1 & ((1 << 34) - 1), NPF_BITS)),
    )


PF_ERROR_BITS: Final[BitNames] = {0: "P", 1: "W", 2: "U", 3: "RSVD", 4: "I", 5: "PK", 6: "SS", 15: "SGX"}

EVENT_TYPES: Final[Mapping[int, str]] = {
    0: "external interrupt",
    2: "NMI",
    3: "exception",
    4: "software interrupt",
}


@dataclass(frozen=True)
class EventInfo:
    """EVENTINJ / EXITINTINFO (APM Vol. 2 15.20, Figure 15-4)."""

    vector: int  # 7:0
    type: int  # 10:8
    error_valid: bool  # 11 EV
    valid: bool  # 31 V
    error_code: int  # 63:32

    def describe(self) -> str:
        if not self.valid:
            return "not valid"
        kind = EVENT_TYPES.get(self.type, f"reserved type {self.type}")
        what = vector_name(self.vector) if self.type in (2, 3) else f"vector {self.vector:#x}"
        text = f"{kind} {what}"
        return text + (f", error code {self.error_code:#x}" if self.error_valid else "")


def decode_event(value: int) -> EventInfo:
    return EventInfo(
        vector=value & 0xFF,
        type=value >> 8 & 7,
        error_valid=bool(value >> 11 & 1),
        valid=bool(value >> 31 & 1),
        error_code=value >> 32 & 0xFFFF_FFFF,
    )


#: How a CR access without decode assists is worded: the tools that hold the instruction bytes put the
#: instruction in its place (hvtrace.decode.record_meaning.detail).
NO_DECODE_ASSIST: Final = "no decode assist"

GPRS: Final = (
    "RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI",
    "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15",
)  # fmt: skip


def describe_exitinfo(code: int, info1: int, info2: int) -> list[str]:
    """EXITINFO1/2 decoded for this EXITCODE (empty when the code defines neither)."""
    code &= U64
    if code < 0x20:
        cr, write = code & 0xF, code >= 0x10
        if info1 >> 63 & 1:  # decode assists: a MOV CRx, with its GPR
            gpr = GPRS[info1 & 0xF]
            return [f"MOV CR{cr}, {gpr}" if write else f"MOV {gpr}, CR{cr}"]
        # EXITINFO1 names the instruction only with decode assists (APM Vol. 2 15.33.4); without them
        # bit 63 is clear for every CR access, so only the instruction bytes tell MOV from LMSW/CLTS.
        which = "MOV, LMSW or CLTS" if write and cr == 0 else "MOV"
        return [f"CR{cr} {'write' if write else 'read'} ({which}: {NO_DECODE_ASSIST})"]
    if code < 0x40:
        dr, write = code & 0xF, code >= 0x30
        gpr = GPRS[info1 & 0xF]
        return [f"MOV DR{dr}, {gpr}" if write else f"MOV {gpr}, DR{dr}"]
    if code < 0x60:
        vector = code - 0x40
        if vector == 14:
            errs = " ".join(bit_names(info1 & 0xFFFF_FFFF, PF_ERROR_BITS)) or "none"
            return [f"#PF at {info2:#x}, error code {info1:#x} ({errs})"]
        if vector in (8, 10, 11, 12, 13, 17, 21, 29, 30):
            return [f"{vector_name(vector)} error code {info1:#x}"]
        return []
    if code == 0x7B:
        return [decode_ioio(info1).describe(), f"next RIP {info2:#x}"]
    if code == 0x7C:
        return ["WRMSR" if info1 & 1 else "RDMSR"]
    if code == 0x7D:
        how = "IRET" if info2 >> 36 & 1 else "JMP" if info2 >> 38 & 1 else "CALL or task gate"
        text = f"task switch to selector {info1 & 0xFFFF:#06x} by {how}"
        if info2 >> 44 & 1:
            text += f", error code {info2 & 0xFFFF_FFFF:#x}"
        return [text]
    if code in (0x79, 0x7A) and info1:
        return [f"linear address {info1:#x}"]
    if code == 0x8F or 0x90 <= code < 0xA0:
        return [f"new value {info1:#x}"]
    if code == 0x400:
        return [decode_npf(info1, info2).describe()]
    return []
