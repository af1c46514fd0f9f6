"""VMX exit reasons and exit qualifications.

- Basic exit reasons: SDM Vol. 3D Appendix C, Table C-1. The short names are those of
  hv/vmx/names.c (a test parses that file and compares); reasons the C table lacks are named here.
- Exit-reason format: SDM Vol. 3C 25.9.1 (bits 15:0 basic reason, 27 enclave, 28 pending MTF,
  29 from VMX root, 31 VM-entry failure).
- Exit qualifications: SDM Vol. 3C 28.2.1, Tables 28-1 (debug exceptions), 28-2 (task switch), 28-3
  (control-register accesses), 28-4 (MOV DR), 28-5 (I/O instructions), 28-6 (APIC access), 28-7 (EPT
  violations); VM-entry failures: 27.8 (qualification 2 = PDPTE loading, 3 = NMI injection, 4 = VMCS
  link pointer); VM-exit instruction information: 28.2.5 (INVEPT / INVPCID / INVVPID; LIDT/LGDT/
  SIDT/SGDT; LLDT/LTR/SLDT/STR layouts).
- Interruption information (VM-exit, IDT-vectoring, VM-entry): 25.9.2 / 25.9.3 / 25.8.3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from hvtrace.decode.vmx_controls import PENDING_DEBUG, bit_names, vector_name

#: Basic exit reason -> short name (names of hv/vmx/names.c; others from Table C-1).
EXIT_REASONS: Final[Mapping[int, str]] = {
    0: "EXCEPTION_NMI",
    1: "EXTERNAL_INTERRUPT",
    2: "TRIPLE_FAULT",
    3: "INIT_SIGNAL",
    4: "SIPI",
    5: "IO_SMI",
    6: "OTHER_SMI",
    7: "INTERRUPT_WINDOW",
    8: "NMI_WINDOW",
    9: "TASK_SWITCH",
    10: "CPUID",
    11: "GETSEC",
    12: "HLT",
    13: "INVD",
    14: "INVLPG",
    15: "RDPMC",
    16: "RDTSC",
    17: "RSM",
    18: "VMCALL",
    19: "VMCLEAR",
    20: "VMLAUNCH",
    21: "VMPTRLD",
    22: "VMPTRST",
    23: "VMREAD",
    24: "VMRESUME",
    25: "VMWRITE",
    26: "VMXOFF",
    27: "VMXON",
    28: "CR_ACCESS",
    29: "DR_ACCESS",
    30: "IO_INSTRUCTION",
    31: "MSR_READ",
    32: "MSR_WRITE",
    33: "INVALID_GUEST_STATE",
    34: "MSR_LOADING",
    36: "MWAIT",
    37: "MONITOR_TRAP_FLAG",
    39: "MONITOR",
    40: "PAUSE",
    41: "MACHINE_CHECK",
    43: "TPR_BELOW_THRESHOLD",
    44: "APIC_ACCESS",
    45: "VIRTUALIZED_EOI",
    46: "GDTR_IDTR",
    47: "LDTR_TR",
    48: "EPT_VIOLATION",
    49: "EPT_MISCONFIG",
    50: "INVEPT",
    51: "RDTSCP",
    52: "PREEMPTION_TIMER",
    53: "INVVPID",
    54: "WBINVD",
    55: "XSETBV",
    56: "APIC_WRITE",
    57: "RDRAND",
    58: "INVPCID",
    59: "VMFUNC",
    60: "ENCLS",
    61: "RDSEED",
    62: "PML_FULL",
    63: "XSAVES",
    64: "XRSTORS",
    65: "PCONFIG",
    66: "SPP_EVENT",
    67: "UMWAIT",
    68: "TPAUSE",
    69: "LOADIWKEY",
    70: "ENCLV",
    72: "ENQCMD_PASID_FAILURE",
    73: "ENQCMDS_PASID_FAILURE",
    74: "BUS_LOCK",
    75: "NOTIFY",
    76: "SEAMCALL",
    77: "TDCALL",
}

#: The SDM's own wording for each basic exit reason (Table C-1).
EXIT_REASON_DESCRIPTIONS: Final[Mapping[int, str]] = {
    0: "Exception or non-maskable interrupt (NMI)",
    1: "External interrupt",
    2: "Triple fault",
    3: "INIT signal",
    4: "Start-up IPI (SIPI)",
    5: "I/O system-management interrupt (SMI)",
    6: "Other SMI",
    7: "Interrupt window",
    8: "NMI window",
    9: "Task switch",
    10: "CPUID",
    11: "GETSEC",
    12: "HLT",
    13: "INVD",
    14: "INVLPG",
    15: "RDPMC",
    16: "RDTSC",
    17: "RSM",
    18: "VMCALL",
    19: "VMCLEAR",
    20: "VMLAUNCH",
    21: "VMPTRLD",
    22: "VMPTRST",
    23: "VMREAD",
    24: "VMRESUME",
    25: "VMWRITE",
    26: "VMXOFF",
    27: "VMXON",
    28: "Control-register accesses",
    29: "MOV DR",
    30: "I/O instruction",
    31: "RDMSR",
    32: "WRMSR",
    33: "VM-entry failure due to invalid guest state",
    34: "VM-entry failure due to MSR loading",
    36: "MWAIT",
    37: "Monitor trap flag",
    39: "MONITOR",
    40: "PAUSE",
    41: "VM-entry failure due to machine-check event",
    43: "TPR below threshold",
    44: "APIC access",
    45: "Virtualized EOI",
    46: "Access to GDTR or IDTR",
    47: "Access to LDTR or TR",
    48: "EPT violation",
    49: "EPT misconfiguration",
    50: "INVEPT",
    51: "RDTSCP",
    52: "VMX-preemption timer expired",
    53: "INVVPID",
    54: "WBINVD or WBNOINVD",
    55: "XSETBV",
    56: "APIC write",
    57: "RDRAND",
    58: "INVPCID",
    59: "VMFUNC",
    60: "ENCLS",
    61: "RDSEED",
    62: "Page-modification log full",
    63: "XSAVES",
    64: "XRSTORS",
    65: "PCONFIG",
    66: "SPP-related event",
    67: "UMWAIT",
    68: "TPAUSE",
    69: "LOADIWKEY",
    70: "ENCLV",
    72: "ENQCMD PASID translation failure",
    73: "ENQCMDS PASID translation failure",
    74: "Bus lock",
    75: "Instruction timeout",
    76: "SEAMCALL",
    77: "TDCALL",
}

NAME_TO_REASON: Final[Mapping[str, int]] = {name: r for r, name in EXIT_REASONS.items()}

#: Basic reasons that are VM-entry failures when bit 31 of the exit reason is set (27.8).
ENTRY_FAILURE_REASONS: Final = frozenset({33, 34, 41})


def exit_reason_name(basic: int) -> str:
    """As vmx_exit_reason_name() in hv/vmx/names.c for the reasons it knows; UNKNOWN otherwise."""
    return EXIT_REASONS.get(basic, "UNKNOWN")


@dataclass(frozen=True)
class ExitReason:
    """The full 32-bit exit-reason field (SDM Vol. 3C 25.9.1)."""

    basic: int
    enclave: bool  # bit 27
    pending_mtf: bool  # bit 28
    from_root: bool  # bit 29: VM exit from VMX root operation (SMM monitor)
    entry_failure: bool  # bit 31

    @property
    def name(self) -> str:
        return exit_reason_name(self.basic)

    def describe(self) -> str:
        flags = [
            label
            for on, label in (
                (self.entry_failure, "VM-entry failure"),
                (self.enclave, "from enclave"),
                (self.pending_mtf, "pending MTF"),
                (self.from_root, "from VMX root"),
            )
            if on
        ]
        text = f"{self.basic} {self.name}"
        return text + (f" ({', '.join(flags)})" if flags else "")


def decode_exit_reason(value: int) -> ExitReason:
    return ExitReason(
        basic=value & 0xFFFF,
        enclave=bool(value >> 27 & 1),
        pending_mtf=bool(value >> 28 & 1),
        from_root=bool(value >> 29 & 1),
        entry_failure=bool(value >> 31 & 1),
    )


# ---- interruption information ----------------------------------------------------------------------

INTERRUPTION_TYPES: Final[Mapping[int, str]] = {
    0: "external interrupt",
    1: "reserved",
    2: "NMI",
    3: "hardware exception",
    4: "software interrupt",
    5: "privileged software exception",
    6: "software exception",
    7: "other event",
}


@dataclass(frozen=True)
class InterruptionInfo:
    """VM-exit / IDT-vectoring / VM-entry interruption information (bits 7:0, 10:8, 11, 12, 31)."""

    vector: int
    type: int
    error_code_valid: bool
    nmi_unblocking: bool  # bit 12: NMI unblocking due to IRET (exit info) / IDT-vectoring: undefined
    valid: bool

    @property
    def type_name(self) -> str:
        return INTERRUPTION_TYPES[self.type]

    def describe(self) -> str:
        if not self.valid:
            return "not valid"
        if self.type in (3, 6) or (self.type == 2 and self.vector == 2):
            what = vector_name(self.vector)
        elif self.type == 7 and self.vector == 0:
            what = "MTF"
        else:
            what = f"vector {self.vector:#x}"
        parts = [f"{self.type_name} {what}"]
        if self.error_code_valid:
            parts.append("error code valid")
        if self.nmi_unblocking:
            parts.append("NMI unblocking due to IRET")
        return ", ".join(parts)


def decode_interruption_info(value: int) -> InterruptionInfo:
    return InterruptionInfo(
        vector=value & 0xFF,
        type=value >> 8 & 7,
        error_code_valid=bool(value >> 11 & 1),
        nmi_unblocking=bool(value >> 12 & 1),
        valid=bool(value >> 31 & 1),
    )


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
        extra = [
            label
            for on, label in (
                (self.user_la, "user"),
                (self.rw_la, "r/w"),
                (self.xd_la, "xd"),
                (self.nmi_unblocking, "NMI unblocking"),
                (self.shadow_stack, "shadow-stack"),
                (self.supervisor_ss, "supervisor shadow-stack"),
                (self.paging_verification, "paging verification"),
                (self.asynchronous, "asynchronous"),
            )
            if on
        ]
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
