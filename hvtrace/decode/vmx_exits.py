"""VMX exit reasons and interruption information.

- Basic exit reasons: SDM Vol. 3D Appendix C, Table C-1. The short names are those of
  hv/vmx/names.c (a test parses that file and compares); reasons the C table lacks are named here.
- Exit-reason format: SDM Vol. 3C 25.9.1 (bits 15:0 basic reason, 27 enclave, 28 pending MTF,
  29 from VMX root, 31 VM-entry failure).
- Exit qualifications and VM-exit instruction information: hvtrace.decode.vmx_qualifications.
- Interruption information (VM-exit, IDT-vectoring, VM-entry): 25.9.2 / 25.9.3 / 25.8.3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from hvtrace.decode.vmx_controls import labels_on, vector_name

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
    # 10-27: Table C-1 names these by their instruction, as the short names do.
    **{r: EXIT_REASONS[r] for r in range(10, 28)},
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
        flags = labels_on(
            (self.entry_failure, "VM-entry failure"),
            (self.enclave, "from enclave"),
            (self.pending_mtf, "pending MTF"),
            (self.from_root, "from VMX root"),
        )
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
