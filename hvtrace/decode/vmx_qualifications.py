"""VMX exit qualifications and VM-exit instruction information, decoded per basic exit reason.

- Exit qualifications: SDM Vol. 3C 28.2.1, Tables 28-1 (debug exceptions), 28-2 (task switch), 28-3
  (control-register accesses), 28-4 (MOV DR), 28-5 (I/O instructions), 28-6 (APIC access), 28-7 (EPT
  violations); VM-entry failures: 27.8 (qualification 2 = PDPTE loading, 3 = NMI injection, 4 = VMCS
  link pointer); VM-exit instruction information: 28.2.5 (INVEPT / INVPCID / INVVPID; LIDT/LGDT/
  SIDT/SGDT; LLDT/LTR/SLDT/STR layouts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from hvtrace.decode.vmx_controls import PENDING_DEBUG, bit_names, labels_on
from hvtrace.decode.vmx_exits import EXIT_REASON_DESCRIPTIONS, decode_exit_reason

# ---- exit qualifications ---------------------------------------------------------------------------

GPR_NAMES: Final = (
    "RAX",
    "RCX",
    "RDX",
    "RBX",
    "RSP",
    "RBP",
    "RSI",
    "RDI",
    "R8",
    "R9",
    "R10",
    "R11",
    "R12",
    "R13",
    "R14",
    "R15",
)

CR_ACCESS_TYPES: Final = ("MOV to CR", "MOV from CR", "CLTS", "LMSW")


@dataclass(frozen=True)
class CrAccess:
    """Table 28-3: control-register accesses."""

    cr: int  # bits 3:0
    access_type: int  # bits 5:4: 0 MOV to CR, 1 MOV from CR, 2 CLTS, 3 LMSW
    lmsw_memory: bool  # bit 6: LMSW operand type (1 = memory)
    gpr: int  # bits 11:8 (MOV CR only)
    lmsw_data: int  # bits 31:16 (LMSW only)

    def describe(self) -> str:
        if self.access_type == 0:
            return f"MOV CR{self.cr}, {GPR_NAMES[self.gpr]}"
        if self.access_type == 1:
            return f"MOV {GPR_NAMES[self.gpr]}, CR{self.cr}"
        if self.access_type == 2:
            return "CLTS"
        operand = "memory" if self.lmsw_memory else "register"
        return f"LMSW {self.lmsw_data:#06x} ({operand} operand)"


def decode_cr_access(qual: int) -> CrAccess:
    return CrAccess(
        cr=qual & 0xF,
        access_type=qual >> 4 & 3,
        lmsw_memory=bool(qual >> 6 & 1),
        gpr=qual >> 8 & 0xF,
        lmsw_data=qual >> 16 & 0xFFFF,
    )


@dataclass(frozen=True)
class DrAccess:
    """Table 28-4: MOV DR."""

    dr: int  # bits 2:0
    from_dr: bool  # bit 4: 1 = MOV from DR
    gpr: int  # bits 11:8

    def describe(self) -> str:
        if self.from_dr:
            return f"MOV {GPR_NAMES[self.gpr]}, DR{self.dr}"
        return f"MOV DR{self.dr}, {GPR_NAMES[self.gpr]}"


def decode_dr_access(qual: int) -> DrAccess:
    return DrAccess(dr=qual & 7, from_dr=bool(qual >> 4 & 1), gpr=qual >> 8 & 0xF)


@dataclass(frozen=True)
class IoAccess:
    """Table 28-5: I/O instructions."""

    size: int  # bytes: bits 2:0 hold size - 1 (0, 1, 3)
    is_in: bool  # bit 3: 1 = IN
    string: bool  # bit 4
    rep: bool  # bit 5
    immediate: bool  # bit 6: operand encoding, 1 = immediate port (0 = DX)
    port: int  # bits 31:16

    def describe(self) -> str:
        base = ("INS" if self.is_in else "OUTS") if self.string else ("IN" if self.is_in else "OUT")
        prefix = "REP " if self.rep else ""
        how = "imm8" if self.immediate else "DX"
        return f"{prefix}{base} port {self.port:#06x} ({how}), {self.size} byte{'s' * (self.size > 1)}"


def decode_io(qual: int) -> IoAccess:
    return IoAccess(
        size=(qual & 7) + 1,
        is_in=bool(qual >> 3 & 1),
        string=bool(qual >> 4 & 1),
        rep=bool(qual >> 5 & 1),
        immediate=bool(qual >> 6 & 1),
        port=qual >> 16 & 0xFFFF,
    )


EPT_VIOLATION_BITS: Final[Mapping[int, str]] = {
    0: "data read",
    1: "data write",
    2: "instruction fetch",
    3: "entry readable",
    4: "entry writable",
    5: "entry executable",
    6: "entry user-mode executable",
    7: "guest linear address valid",
    8: "access to the translated linear address",
    9: "user-mode linear address",
    10: "linear address read/write",
    11: "linear address execute-disable",
    12: "NMI unblocking due to IRET",
    13: "shadow-stack access",
    14: "supervisor shadow-stack",
    15: "guest-paging verification",
    16: "asynchronous to instruction execution",
}


@dataclass(frozen=True)
class EptViolation:
    """Table 28-7: EPT violations."""

    read: bool
    write: bool
    fetch: bool
    entry_r: bool  # bits 3-5: AND of the R/W/X bits of the EPT entries on the walk
    entry_w: bool
    entry_x: bool
    entry_user_x: bool  # bit 6, with mode-based execute control
    gla_valid: bool  # bit 7
    gla_translation: bool  # bit 8 (if bit 7): 1 = the final translation, 0 = a guest paging-structure access
    user_la: bool  # bit 9 (advanced VM-exit information)
    rw_la: bool  # bit 10
    xd_la: bool  # bit 11
    nmi_unblocking: bool  # bit 12
    shadow_stack: bool  # bit 13
    supervisor_ss: bool  # bit 14
    paging_verification: bool  # bit 15
    asynchronous: bool  # bit 16

    @property
    def access(self) -> str:
        return "".join(c if on else "-" for c, on in (("r", self.read), ("w", self.write), ("x", self.fetch)))

    @property
    def entry_perms(self) -> str:
        return "".join(
            c if on else "-" for c, on in (("r", self.entry_r), ("w", self.entry_w), ("x", self.entry_x))
        )

    def describe(self) -> str:
        text = f"access {self.access}, entry {self.entry_perms}"
        if self.entry_user_x:
            text += " (user-x)"
        if self.gla_valid:
            text += ", GLA valid: " + (
                "the translated address" if self.gla_translation else "a guest paging-structure access"
            )
        else:
            text += ", no GLA"
        extra = labels_on(
            (self.user_la, "user"),
            (self.rw_la, "r/w"),
            (self.xd_la, "xd"),
            (self.nmi_unblocking, "NMI unblocking"),
            (self.shadow_stack, "shadow-stack"),
            (self.supervisor_ss, "supervisor shadow-stack"),
            (self.paging_verification, "paging verification"),
            (self.asynchronous, "asynchronous"),
        )
        return text + (f" [{', '.join(extra)}]" if extra else "")


def decode_ept_violation(qual: int) -> EptViolation:
    b = [bool(qual >> i & 1) for i in range(17)]
    return EptViolation(*b)


DEBUG_QUAL_BITS: Final = PENDING_DEBUG  # Table 28-1 uses the pending-debug-exceptions layout


def describe_debug_exception(qual: int) -> str:
    """Table 28-1: B0-B3 (3:0), BLD (11), BD (13), BS (14), RTM (16)."""
    names = bit_names(qual & 0x1_680F, {**DEBUG_QUAL_BITS, 13: "BD"})
    return " ".join(names) if names else "none"


TASK_SWITCH_SOURCES: Final = ("CALL", "IRET", "JMP", "task gate in IDT")


@dataclass(frozen=True)
class TaskSwitch:
    """Table 28-2: task switch."""

    selector: int  # bits 15:0
    source: int  # bits 31:30

    def describe(self) -> str:
        return f"to TSS selector {self.selector:#06x} by {TASK_SWITCH_SOURCES[self.source]}"


def decode_task_switch(qual: int) -> TaskSwitch:
    return TaskSwitch(selector=qual & 0xFFFF, source=qual >> 30 & 3)


APIC_ACCESS_TYPES: Final[Mapping[int, str]] = {
    0: "linear read",
    1: "linear write",
    2: "linear instruction fetch",
    3: "linear access during event delivery",
    10: "guest-physical access during event delivery",
    15: "guest-physical access for instruction fetch or execution",
}


def describe_apic_access(qual: int) -> str:
    """Table 28-6: offset 11:0, access type 15:12, asynchronous 16."""
    kind = APIC_ACCESS_TYPES.get(qual >> 12 & 0xF, f"type {qual >> 12 & 0xF}")
    text = f"{kind} at APIC offset {qual & 0xFFF:#05x}"
    return text + (" (asynchronous)" if qual >> 16 & 1 else "")


ENTRY_FAILURE_QUALIFICATIONS: Final[Mapping[int, str]] = {
    0: "no further information",
    2: "failure loading PDPTEs",
    3: "failure injecting an NMI (blocking by NMI)",
    4: "invalid VMCS link pointer",
}


def describe_entry_failure(basic: int, qual: int) -> str:
    what = EXIT_REASON_DESCRIPTIONS.get(basic, f"basic reason {basic}")
    if basic == 33:
        return f"{what}: {ENTRY_FAILURE_QUALIFICATIONS.get(qual, f'qualification {qual}')}"
    if basic == 34:
        return f"{what}: MSR-load entry {qual} (1-based)"
    return what


# ---- VM-exit instruction information ---------------------------------------------------------------

SEGMENTS: Final = ("ES", "CS", "SS", "DS", "FS", "GS")
ADDRESS_SIZES: Final = {0: 16, 1: 32, 2: 64}


@dataclass(frozen=True)
class MemOperandInfo:
    """Instruction information for INVEPT / INVPCID / INVVPID and the like (28.2.5).

    Bits 1:0 scaling, 9:7 address size, 15:17 segment, 21:18 index, 22 index invalid, 26:23 base,
    27 base invalid, 31:28 reg2 (the register holding the INVEPT / INVVPID / INVPCID type).
    """

    scaling: int
    address_size: int  # bits
    segment: int
    index: int | None
    base: int | None
    reg2: int

    def operand(self, displacement: int) -> str:
        parts = []
        if self.base is not None:
            parts.append(GPR_NAMES[self.base])
        if self.index is not None:
            parts.append(f"{GPR_NAMES[self.index]}*{1 << self.scaling}")
        disp = displacement & ((1 << 64) - 1)
        if disp >= 1 << 63:
            parts.append(f"- {(1 << 64) - disp:#x}")
        elif disp or not parts:
            parts.append(f"+ {disp:#x}" if parts else f"{disp:#x}")
        seg = SEGMENTS[self.segment] if self.segment < len(SEGMENTS) else "?"
        return f"{seg}:[{' '.join(parts)}]"


def decode_mem_operand_info(info: int) -> MemOperandInfo:
    return MemOperandInfo(
        scaling=info & 3,
        address_size=ADDRESS_SIZES.get(info >> 7 & 7, 0),
        segment=info >> 15 & 7,
        index=None if info >> 22 & 1 else info >> 18 & 0xF,
        base=None if info >> 27 & 1 else info >> 23 & 0xF,
        reg2=info >> 28 & 0xF,
    )


INVEPT_TYPES: Final[Mapping[int, str]] = {1: "single-context", 2: "all-context"}
INVVPID_TYPES: Final[Mapping[int, str]] = {
    0: "individual-address",
    1: "single-context",
    2: "all-context",
    3: "single-context-retaining-globals",
}
INVPCID_TYPES: Final[Mapping[int, str]] = {
    0: "individual-address",
    1: "single-context",
    2: "all-context-including-globals",
    3: "all-context",
}
_INV_TYPES: Final[Mapping[int, tuple[str, Mapping[int, str]]]] = {
    50: ("INVEPT", INVEPT_TYPES),
    53: ("INVVPID", INVVPID_TYPES),
    58: ("INVPCID", INVPCID_TYPES),
}


def describe_invalidation(
    basic: int, qual: int, instr_info: int, regs: Mapping[str, int] | None = None
) -> str:
    """INVEPT / INVVPID / INVPCID: the type register from the instruction information, and the type
    itself when the guest registers are given (by name, e.g. ``{"RCX": 1}``)."""
    insn, types = _INV_TYPES[basic]
    info = decode_mem_operand_info(instr_info)
    reg = GPR_NAMES[info.reg2]
    text = f"{insn} type in {reg}, descriptor at {info.operand(qual)}"
    if regs is not None and reg in regs:
        t = regs[reg]
        text += f"; type {t} = {types.get(t, 'invalid')}"
    return text


GDTR_IDTR_INSNS: Final = ("SGDT", "SIDT", "LGDT", "LIDT")
LDTR_TR_INSNS: Final = ("SLDT", "STR", "LLDT", "LTR")


def describe_descriptor_table(basic: int, instr_info: int) -> str:
    """Reasons 46 / 47: the instruction identity is in bits 29:28 of the instruction information."""
    names = GDTR_IDTR_INSNS if basic == 46 else LDTR_TR_INSNS
    return names[instr_info >> 28 & 3]


# ---- one entry point -------------------------------------------------------------------------------


def describe_qualification(
    reason: int, qual: int, instr_info: int | None = None, regs: Mapping[str, int] | None = None
) -> str | None:
    """The exit qualification decoded for this exit reason (full 32-bit reason or basic), or None when
    the reason has no qualification layout of its own."""
    er = decode_exit_reason(reason)
    basic = er.basic
    if er.entry_failure:
        return describe_entry_failure(basic, qual)
    if basic == 0:
        return None  # exceptions: see VM_EXIT_INTR_INFO; #DB / #PF put DR6 bits / the address here
    if basic == 9:
        return decode_task_switch(qual).describe()
    if basic == 28:
        return decode_cr_access(qual).describe()
    if basic == 29:
        return decode_dr_access(qual).describe()
    if basic == 30:
        return decode_io(qual).describe()
    if basic == 48:
        return decode_ept_violation(qual).describe()
    if basic == 44:
        return describe_apic_access(qual)
    if basic in (45, 56):
        return f"vector {qual & 0xFF:#x}" if basic == 45 else f"APIC offset {qual & 0xFFF:#05x}"
    if basic == 14:
        return f"linear address {qual:#x}"
    if basic in (50, 53, 58) and instr_info is not None:
        return describe_invalidation(basic, qual, instr_info, regs)
    if basic in (46, 47) and instr_info is not None:
        return describe_descriptor_table(basic, instr_info)
    if basic == 4:
        return f"SIPI vector {qual & 0xFF:#x}"
    if basic in (33, 34):
        return describe_entry_failure(basic, qual)
    if basic == 75:
        return "VM context invalid" if qual & 1 else "VM context valid"
    return None


def describe_exception_qualification(vector: int, qual: int) -> str | None:
    """For exit reason 0: #DB puts the debug-exception bits in the qualification, #PF the linear address."""
    if vector == 1:
        return describe_debug_exception(qual)
    if vector == 14:
        return f"page-fault linear address {qual:#x}"
    return None
