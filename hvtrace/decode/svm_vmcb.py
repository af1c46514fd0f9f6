"""The AMD-V VMCB: layout, intercept bits, exit codes, EXITINFO decoders and a text view.

Sources: AMD64 Architecture Programmer's Manual Vol. 2 (pub. 24593, rev. 3.41-3.42):
- Appendix B "Layout of VMCB": Table B-1 (control area, offsets 0x000-0x3FF), Table B-2 (state-save
  area, from 0x400; the table lists offsets relative to 0x400, here they are from the VMCB start);
- Appendix C "SVM Intercept Exit Codes", Table C-1;
- 15.10.2 IOIO intercept EXITINFO1 (Figure 15-2); 15.11 MSR intercept (EXITINFO1 0 = RDMSR, 1 = WRMSR);
  15.12.x exception intercepts (#PF: EXITINFO1 error code, EXITINFO2 faulting address); 15.14.x task
  switch; 15.20 EVENTINJ (Figure 15-4; EXITINTINFO has the same format); 15.25.6 #NPF (EXITINFO1 a
  page-fault error code plus bit 32 "final guest-physical address", bit 33 "guest page tables";
  EXITINFO2 the guest-physical address); 15.33 decode assists (MOV CRx/DRx: EXITINFO1 bit 63 MOV,
  3:0 GPR); 15.15.3 VMCB clean bits; 15.16.1 TLB control.

Snapshot input: (byte offset, qword) pairs as the hypervisor stores them (abi.h struct hv_snapshot,
offsets 8-byte aligned), or the raw 4 KiB VMCB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from hvtrace.decode.stage2 import describe_pat
from hvtrace.decode.vmcs_view import AREA_TITLES, AREAS, Row, render
from hvtrace.decode.vmx_controls import (
    CR0_BITS,
    CR4_BITS,
    EFER_BITS,
    BitNames,
    bit_names,
    describe_rflags,
    exception_bitmap_names,
    set_bits,
    vector_name,
)

VMCB_SIZE: Final = 4096
SAVE_AREA: Final = 0x400

# ---- intercept vectors (Table B-1) -----------------------------------------------------------------

INTERCEPT_MISC1: Final[BitNames] = {
    0: "INTR",
    1: "NMI",
    2: "SMI",
    3: "INIT",
    4: "VINTR",
    5: "CR0_SEL_WRITE",
    6: "IDTR_READ",
    7: "GDTR_READ",
    8: "LDTR_READ",
    9: "TR_READ",
    10: "IDTR_WRITE",
    11: "GDTR_WRITE",
    12: "LDTR_WRITE",
    13: "TR_WRITE",
    14: "RDTSC",
    15: "RDPMC",
    16: "PUSHF",
    17: "POPF",
    18: "CPUID",
    19: "RSM",
    20: "IRET",
    21: "INTN",
    22: "INVD",
    23: "PAUSE",
    24: "HLT",
    25: "INVLPG",
    26: "INVLPGA",
    27: "IOIO_PROT",
    28: "MSR_PROT",
    29: "TASK_SWITCH",
    30: "FERR_FREEZE",
    31: "SHUTDOWN",
}

INTERCEPT_MISC2: Final[BitNames] = {
    0: "VMRUN",
    1: "VMMCALL",
    2: "VMLOAD",
    3: "VMSAVE",
    4: "STGI",
    5: "CLGI",
    6: "SKINIT",
    7: "RDTSCP",
    8: "ICEBP",
    9: "WBINVD",
    10: "MONITOR",
    11: "MWAIT",
    12: "MWAIT_CONDITIONAL",
    13: "XSETBV",
    14: "RDPRU",
    15: "EFER_WRITE_TRAP",
    **{16 + n: f"CR{n}_WRITE_TRAP" for n in range(16)},
}

INTERCEPT_MISC3: Final[BitNames] = {
    0: "INVLPGB",
    1: "INVLPGB_ILLEGAL",
    2: "INVPCID",
    3: "MCOMMIT",
    4: "TLBSYNC",
    5: "BUS_LOCK",
    6: "IDLE_HLT",
}

CR_BITS16: Final[BitNames] = {n: f"CR{n}" for n in range(16)}
DR_BITS16: Final[BitNames] = {n: f"DR{n}" for n in range(16)}

#: V_TPR .. AVIC_ENABLE at 0x060 (Table B-1); V_TPR (7:0) and V_INTR_PRIO / V_INTR_VECTOR are values.
VINTR_BITS: Final[BitNames] = {
    8: "V_IRQ",
    9: "VGIF",
    11: "V_NMI",
    12: "V_NMI_MASK",
    20: "V_IGN_TPR",
    24: "V_INTR_MASKING",
    25: "VGIF_ENABLE",
    26: "V_NMI_ENABLE",
    30: "X2AVIC_ENABLE",
    31: "AVIC_ENABLE",
}
INTERRUPT_SHADOW_BITS: Final[BitNames] = {0: "INTERRUPT_SHADOW", 1: "GUEST_INTERRUPT_MASK"}
NP_CONTROL_BITS: Final[BitNames] = {
    0: "NP_ENABLE",
    1: "SEV_ENABLE",
    2: "SEV_ES_ENABLE",
    3: "GMET",
    4: "SSS_CHECK",
    5: "VTE",
    6: "RO_GUEST_PAGE_TABLES",
    7: "INVLPGB_TLBSYNC_ENABLE",
}
VIRT_EXT_BITS: Final[BitNames] = {0: "LBR_VIRTUALIZATION", 1: "VIRTUAL_VMSAVE_VMLOAD"}
CLEAN_BITS: Final[BitNames] = {
    0: "I (intercepts, TSC offset, pause filter)",
    1: "IOPM (IOPM_BASE, MSRPM_BASE)",
    2: "ASID",
    3: "TPR (V_TPR, V_IRQ, V_INTR_*)",
    4: "NP (NP_ENABLE, N_CR3, G_PAT)",
    5: "CRx (CR0, CR3, CR4, EFER)",
    6: "DRx (DR6, DR7)",
    7: "DT (GDTR, IDTR)",
    8: "SEG (CS, DS, SS, ES, CPL)",
    9: "CR2",
    10: "LBR (DBGCTL, BR_FROM/TO, LASTEXCP)",
    11: "AVIC",
    12: "CET (S_CET, SSP, ISST_ADDR)",
}
TLB_CONTROL_NAMES: Final[Mapping[int, str]] = {
    0: "do nothing",
    1: "flush entire TLB (all ASIDs)",
    3: "flush this guest's TLB entries",
    7: "flush this guest's non-global TLB entries",
}


# ---- layout ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VmcbField:
    offset: int  # from the start of the VMCB
    size: int  # bytes
    name: str
    area: str  # "controls", "exit" or "guest" (the display areas of vmcs_view)


def _c(offset: int, size: int, name: str) -> VmcbField:
    return VmcbField(offset, size, name, "controls")


def _e(offset: int, size: int, name: str) -> VmcbField:
    return VmcbField(offset, size, name, "exit")


def _g(offset: int, size: int, name: str) -> VmcbField:
    return VmcbField(offset, size, name, "guest")


SEGMENTS: Final = ("ES", "CS", "SS", "DS", "FS", "GS", "GDTR", "LDTR", "IDTR", "TR")

_CONTROL: Final = (
    _c(0x000, 2, "INTERCEPT_CR_READ"),
    _c(0x002, 2, "INTERCEPT_CR_WRITE"),
    _c(0x004, 2, "INTERCEPT_DR_READ"),
    _c(0x006, 2, "INTERCEPT_DR_WRITE"),
    _c(0x008, 4, "INTERCEPT_EXCEPTIONS"),
    _c(0x00C, 4, "INTERCEPT_MISC1"),
    _c(0x010, 4, "INTERCEPT_MISC2"),
    _c(0x014, 4, "INTERCEPT_MISC3"),
    _c(0x03C, 2, "PAUSE_FILTER_THRESHOLD"),
    _c(0x03E, 2, "PAUSE_FILTER_COUNT"),
    _c(0x040, 8, "IOPM_BASE_PA"),
    _c(0x048, 8, "MSRPM_BASE_PA"),
    _c(0x050, 8, "TSC_OFFSET"),
    _c(0x058, 4, "GUEST_ASID"),
    _c(0x05C, 1, "TLB_CONTROL"),
    _c(0x060, 8, "VINTR"),
    _c(0x068, 8, "INTERRUPT_SHADOW"),
    _e(0x070, 8, "EXITCODE"),
    _e(0x078, 8, "EXITINFO1"),
    _e(0x080, 8, "EXITINFO2"),
    _e(0x088, 8, "EXITINTINFO"),
    _c(0x090, 8, "NP_CONTROL"),
    _c(0x098, 8, "AVIC_APIC_BAR"),
    _c(0x0A0, 8, "GHCB_PA"),
    _c(0x0A8, 8, "EVENTINJ"),
    _c(0x0B0, 8, "N_CR3"),
    _c(0x0B8, 8, "VIRT_EXT"),
    _c(0x0C0, 4, "VMCB_CLEAN"),
    _e(0x0C8, 8, "NRIP"),
    _e(0x0D0, 1, "INSN_LEN"),
    _e(0x0D1, 15, "INSN_BYTES"),
    _c(0x0E0, 8, "AVIC_BACKING_PAGE"),
    _c(0x0F0, 8, "AVIC_LOGICAL_TABLE"),
    _c(0x0F8, 8, "AVIC_PHYSICAL_TABLE"),
    _c(0x108, 8, "VMSA_PA"),
    _c(0x110, 8, "VMGEXIT_RAX"),
    _c(0x118, 1, "VMGEXIT_CPL"),
)


def _segment_fields() -> tuple[VmcbField, ...]:
    out = []
    for i, seg in enumerate(SEGMENTS):
        base = SAVE_AREA + 16 * i
        out += [
            _g(base, 2, f"{seg}_SELECTOR"),
            _g(base + 2, 2, f"{seg}_ATTRIB"),
            _g(base + 4, 4, f"{seg}_LIMIT"),
            _g(base + 8, 8, f"{seg}_BASE"),
        ]
    return tuple(out)


_SAVE: Final = (
    *_segment_fields(),
    _g(0x4CA, 1, "VMPL"),
    _g(0x4CB, 1, "CPL"),
    _g(0x4D0, 8, "EFER"),
    _g(0x548, 8, "CR4"),
    _g(0x550, 8, "CR3"),
    _g(0x558, 8, "CR0"),
    _g(0x560, 8, "DR7"),
    _g(0x568, 8, "DR6"),
    _g(0x570, 8, "RFLAGS"),
    _g(0x578, 8, "RIP"),
    _g(0x5D8, 8, "RSP"),
    _g(0x5E0, 8, "S_CET"),
    _g(0x5E8, 8, "SSP"),
    _g(0x5F0, 8, "ISST_ADDR"),
    _g(0x5F8, 8, "RAX"),
    _g(0x600, 8, "STAR"),
    _g(0x608, 8, "LSTAR"),
    _g(0x610, 8, "CSTAR"),
    _g(0x618, 8, "SFMASK"),
    _g(0x620, 8, "KERNEL_GS_BASE"),
    _g(0x628, 8, "SYSENTER_CS"),
    _g(0x630, 8, "SYSENTER_ESP"),
    _g(0x638, 8, "SYSENTER_EIP"),
    _g(0x640, 8, "CR2"),
    _g(0x668, 8, "G_PAT"),
    _g(0x670, 8, "DBGCTL"),
    _g(0x678, 8, "BR_FROM"),
    _g(0x680, 8, "BR_TO"),
    _g(0x688, 8, "LASTEXCPFROM"),
    _g(0x690, 8, "LASTEXCPTO"),
    _g(0x6E0, 8, "SPEC_CTRL"),
)

#: Every field, control area first, in offset order.
FIELDS: Final[tuple[VmcbField, ...]] = (*_CONTROL, *_SAVE)
BY_NAME: Final[Mapping[str, VmcbField]] = {f.name: f for f in FIELDS}


def offset_of(name: str) -> int:
    return BY_NAME[name].offset


class Vmcb:
    """A VMCB image: the raw page plus which qwords the source actually provided."""

    def __init__(self, data: bytes | bytearray, present: set[int] | None = None) -> None:
        if len(data) < VMCB_SIZE:
            data = bytes(data) + bytes(VMCB_SIZE - len(data))
        self.data = bytes(data[:VMCB_SIZE])
        self.present = set(range(0, VMCB_SIZE, 8)) if present is None else present

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, int]]) -> Vmcb:
        """From (byte offset, qword) pairs; offsets must be 8-byte aligned and inside the page."""
        buf = bytearray(VMCB_SIZE)
        present: set[int] = set()
        for off, value in pairs:
            if off % 8 or not 0 <= off < VMCB_SIZE:
                raise ValueError(f"VMCB snapshot offset {off:#x} is not an aligned qword in the page")
            buf[off : off + 8] = (value & (1 << 64) - 1).to_bytes(8, "little")
            present.add(off)
        return cls(buf, present)

    def covered(self, f: VmcbField) -> bool:
        first, last = f.offset // 8 * 8, (f.offset + f.size - 1) // 8 * 8
        return all(q in self.present for q in range(first, last + 8, 8))

    def read(self, offset: int, size: int = 8) -> int:
        return int.from_bytes(self.data[offset : offset + size], "little")

    def get(self, name: str) -> int:
        f = BY_NAME[name]
        return self.read(f.offset, f.size)

    def bytes_of(self, name: str) -> bytes:
        f = BY_NAME[name]
        return self.data[f.offset : f.offset + f.size]


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
        if write and cr == 0:
            return ["LMSW or CLTS (no decode-assist GPR)"]
        return []
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


# ---- view ------------------------------------------------------------------------------------------

Rule = Callable[[Vmcb], bool]


def _misc1(v: Vmcb, name: str) -> bool:
    return bool(v.get("INTERCEPT_MISC1") >> _bit(INTERCEPT_MISC1, name) & 1)


def _bit(table: BitNames, name: str) -> int:
    return next(b for b, n in table.items() if n == name)


def _np(v: Vmcb) -> bool:
    return bool(v.get("NP_CONTROL") & 1)


def _sev_es(v: Vmcb) -> bool:
    return bool(v.get("NP_CONTROL") & 4)


def _avic(v: Vmcb) -> bool:
    return bool(v.get("VINTR") >> 31 & 1)


def _lbr(v: Vmcb) -> bool:
    return bool(v.get("VIRT_EXT") & 1)


def _nonzero(name: str) -> Rule:
    return lambda v: v.get(name) != 0


_MEANINGFUL: Final[dict[str, Rule]] = {
    "PAUSE_FILTER_THRESHOLD": lambda v: _misc1(v, "PAUSE"),
    "PAUSE_FILTER_COUNT": lambda v: _misc1(v, "PAUSE"),
    "IOPM_BASE_PA": lambda v: _misc1(v, "IOIO_PROT"),
    "MSRPM_BASE_PA": lambda v: _misc1(v, "MSR_PROT"),
    "N_CR3": _np,
    "G_PAT": _np,
    "AVIC_APIC_BAR": _avic,
    "AVIC_BACKING_PAGE": _avic,
    "AVIC_LOGICAL_TABLE": _avic,
    "AVIC_PHYSICAL_TABLE": _avic,
    "GHCB_PA": _sev_es,
    "VMSA_PA": _sev_es,
    "VMGEXIT_RAX": _sev_es,
    "VMGEXIT_CPL": _sev_es,
    "BR_FROM": _lbr,
    "BR_TO": _lbr,
    "LASTEXCPFROM": _lbr,
    "LASTEXCPTO": _lbr,
    "INSN_LEN": _nonzero("INSN_LEN"),
    "INSN_BYTES": _nonzero("INSN_LEN"),
    "INTERCEPT_MISC3": _nonzero("INTERCEPT_MISC3"),
    "VMPL": _nonzero("VMPL"),
    "S_CET": _nonzero("S_CET"),
    "SSP": _nonzero("SSP"),
    "ISST_ADDR": _nonzero("ISST_ADDR"),
    "SPEC_CTRL": _nonzero("SPEC_CTRL"),
}


def _attrib(value: int) -> str:
    """Segment attributes: descriptor bits 47:40 in 7:0 and 55:52 in 11:8 (Table B-2)."""
    typ, s, dpl, p = value & 0xF, value >> 4 & 1, value >> 5 & 3, value >> 7 & 1
    avl, lng, db, g = value >> 8 & 1, value >> 9 & 1, value >> 10 & 1, value >> 11 & 1
    return f"type={typ:#x} S={s} DPL={dpl} P={p} AVL={avl} L={lng} D/B={db} G={g}"


def _vintr(value: int) -> list[str]:
    flags = bit_names(value & 0xFFFF_FFFF & ~0x000F_00FF, VINTR_BITS)
    text = f"V_TPR={value & 0xFF:#x} V_INTR_PRIO={value >> 16 & 0xF} V_INTR_VECTOR={value >> 32 & 0xFF:#x}"
    return [" ".join([text, *flags])]


def _flags(value: int, table: BitNames) -> list[str]:
    names = bit_names(value, table)
    return [" ".join(names)] if names else []


def details_for(v: Vmcb, name: str, value: int) -> list[str]:
    if name in ("INTERCEPT_CR_READ", "INTERCEPT_CR_WRITE"):
        return _flags(value, CR_BITS16)
    if name in ("INTERCEPT_DR_READ", "INTERCEPT_DR_WRITE"):
        return _flags(value, DR_BITS16)
    if name == "INTERCEPT_EXCEPTIONS":
        names = exception_bitmap_names(value)
        return [" ".join(names)] if names else []
    tables: Mapping[str, BitNames] = {
        "INTERCEPT_MISC1": INTERCEPT_MISC1,
        "INTERCEPT_MISC2": INTERCEPT_MISC2,
        "INTERCEPT_MISC3": INTERCEPT_MISC3,
        "NP_CONTROL": NP_CONTROL_BITS,
        "VIRT_EXT": VIRT_EXT_BITS,
        "INTERRUPT_SHADOW": INTERRUPT_SHADOW_BITS,
    }
    if name in tables:
        return [f"bit {b:2}  {tables[name].get(b, '(reserved / unknown)')}" for b in set_bits(value)]
    if name == "VMCB_CLEAN":
        return [f"clean: {CLEAN_BITS.get(b, f'bit{b}')}" for b in set_bits(value)]
    if name == "TLB_CONTROL":
        return [TLB_CONTROL_NAMES.get(value, "reserved")]
    if name == "VINTR":
        return _vintr(value)
    if name == "EXITCODE":
        return [exit_code_name(value)]
    if name == "EXITINFO1":
        return describe_exitinfo(v.get("EXITCODE"), value, v.get("EXITINFO2"))
    if name in ("EVENTINJ", "EXITINTINFO"):
        return [decode_event(value).describe()]
    if name == "INSN_BYTES":
        return [v.bytes_of("INSN_BYTES")[: v.get("INSN_LEN")].hex(" ")]
    if name.endswith("_ATTRIB"):
        return [_attrib(value)]
    if name == "CR0":
        return _flags(value, CR0_BITS)
    if name == "CR4":
        return _flags(value, CR4_BITS)
    if name == "EFER":
        return _flags(value, EFER_BITS)
    if name == "RFLAGS":
        return [describe_rflags(value)]
    if name == "G_PAT":
        return [describe_pat(value)]
    return []


def build_rows(
    source: Vmcb | bytes | bytearray | Iterable[tuple[int, int]],
    *,
    areas: Iterable[str] | None = None,
    all_fields: bool = False,
    decode: bool = True,
) -> list[Row]:
    """Rows like vmcs_view.build_rows(): areas "controls", "exit", "guest" ("host" is empty: the VMCB
    holds no host state). The row's ``encoding`` is the byte offset."""
    v = source if isinstance(source, Vmcb) else _as_vmcb(source)
    wanted = set(AREAS if areas is None else areas)
    unknown = wanted - set(AREAS)
    if unknown:
        raise ValueError(f"unknown VMCB area(s): {', '.join(sorted(unknown))}")
    rows: list[Row] = []
    for f in FIELDS:
        if f.area not in wanted or not v.covered(f):
            continue
        if not all_fields:
            rule = _MEANINGFUL.get(f.name)
            if rule is not None and not rule(v):
                continue
        # Instruction bytes read in memory order; everything else is a little-endian number.
        value = int.from_bytes(v.bytes_of(f.name), "big") if f.size > 8 else v.read(f.offset, f.size)
        rows.append(
            Row(
                area=f.area,
                encoding=f.offset,
                name=f.name,
                width=f"+{f.offset:03x}",
                value=value,
                hex_digits=2 * f.size,
                details=details_for(v, f.name, value) if decode else [],
            )
        )
    rows.sort(key=lambda r: (AREAS.index(r.area), r.encoding))
    return rows


def _as_vmcb(source: bytes | bytearray | Iterable[tuple[int, int]]) -> Vmcb:
    if isinstance(source, bytes | bytearray):
        return Vmcb(source)
    return Vmcb.from_pairs(source)


def vmcb_view(
    source: Vmcb | bytes | bytearray | Iterable[tuple[int, int]],
    *,
    areas: Iterable[str] | None = None,
    all_fields: bool = False,
    raw: bool = False,
    colourise: bool = False,
) -> list[str]:
    """The VMCB as text lines (the width column shows each field's offset, e.g. ``+578``)."""
    rows = build_rows(source, areas=areas, all_fields=all_fields, decode=not raw)
    return render(rows, colourise=colourise)


__all__ = [
    "AREA_TITLES",
    "EXIT_CODES",
    "FIELDS",
    "Vmcb",
    "build_rows",
    "decode_event",
    "decode_ioio",
    "decode_npf",
    "describe_exitinfo",
    "exit_code_name",
    "vmcb_view",
]
