"""VMX control bits and small VMCS value formats, by name.

Sources (Intel SDM, 2023-2024 editions, where Vol. 3C chapter 25 is "Virtual Machine Control
Structures", 28 "VM Exits", 29 "VMX Support for Address Translation", 31 "VMX Instruction Reference"):

- pin-based controls: 25.6.1, Table 25-5; primary / secondary / tertiary processor-based: 25.6.2,
  Tables 25-6, 25-7, 25-8; VM-function controls: 25.6.14;
- primary / secondary VM-exit controls: 25.7.1; VM-entry controls: 25.8.1;
- segment access rights: 25.4.1, Table 25-2; interruptibility state: 25.4.2, Table 25-3; activity
  state: 25.4.2; pending debug exceptions: 25.4.2, Table 25-4;
- VM-instruction errors: 31.4, Table 31-1 (mirrors hv/vmx/names.c exactly);
- CR0 / CR4 / EFER / RFLAGS bits: Vol. 3A 2.5 and 2.2.1, 2.3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

BitNames = Mapping[int, str]

PIN_BASED: Final[BitNames] = {
    0: "EXTERNAL_INTERRUPT_EXITING",
    3: "NMI_EXITING",
    5: "VIRTUAL_NMIS",
    6: "ACTIVATE_PREEMPTION_TIMER",
    7: "PROCESS_POSTED_INTERRUPTS",
}

PRIMARY_PROCBASED: Final[BitNames] = {
    2: "INTERRUPT_WINDOW_EXITING",
    3: "USE_TSC_OFFSETTING",
    7: "HLT_EXITING",
    9: "INVLPG_EXITING",
    10: "MWAIT_EXITING",
    11: "RDPMC_EXITING",
    12: "RDTSC_EXITING",
    15: "CR3_LOAD_EXITING",
    16: "CR3_STORE_EXITING",
    17: "ACTIVATE_TERTIARY_CONTROLS",
    19: "CR8_LOAD_EXITING",
    20: "CR8_STORE_EXITING",
    21: "USE_TPR_SHADOW",
    22: "NMI_WINDOW_EXITING",
    23: "MOV_DR_EXITING",
    24: "UNCONDITIONAL_IO_EXITING",
    25: "USE_IO_BITMAPS",
    27: "MONITOR_TRAP_FLAG",
    28: "USE_MSR_BITMAPS",
    29: "MONITOR_EXITING",
    30: "PAUSE_EXITING",
    31: "ACTIVATE_SECONDARY_CONTROLS",
}

SECONDARY_PROCBASED: Final[BitNames] = {
    0: "VIRTUALIZE_APIC_ACCESSES",
    1: "ENABLE_EPT",
    2: "DESCRIPTOR_TABLE_EXITING",
    3: "ENABLE_RDTSCP",
    4: "VIRTUALIZE_X2APIC_MODE",
    5: "ENABLE_VPID",
    6: "WBINVD_EXITING",
    7: "UNRESTRICTED_GUEST",
    8: "APIC_REGISTER_VIRTUALIZATION",
    9: "VIRTUAL_INTERRUPT_DELIVERY",
    10: "PAUSE_LOOP_EXITING",
    11: "RDRAND_EXITING",
    12: "ENABLE_INVPCID",
    13: "ENABLE_VM_FUNCTIONS",
    14: "VMCS_SHADOWING",
    15: "ENABLE_ENCLS_EXITING",
    16: "RDSEED_EXITING",
    17: "ENABLE_PML",
    18: "EPT_VIOLATION_VE",
    19: "CONCEAL_VMX_FROM_PT",
    20: "ENABLE_XSAVES_XRSTORS",
    21: "PASID_TRANSLATION",
    22: "MODE_BASED_EPT_EXECUTE",
    23: "SUBPAGE_WRITE_PERMISSIONS",
    24: "PT_USES_GUEST_PHYSICAL_ADDRESSES",
    25: "USE_TSC_SCALING",
    26: "ENABLE_USER_WAIT_PAUSE",
    27: "ENABLE_PCONFIG",
    28: "ENABLE_ENCLV_EXITING",
    30: "VMM_BUS_LOCK_DETECTION",
    31: "INSTRUCTION_TIMEOUT",
}

#: 64-bit control (encoding 0x2034). Only the bits this module is sure of are named.
TERTIARY_PROCBASED: Final[BitNames] = {
    0: "LOADIWKEY_EXITING",
    1: "ENABLE_HLAT",
    2: "EPT_PAGING_WRITE_CONTROL",
    3: "GUEST_PAGING_VERIFICATION",
    4: "IPI_VIRTUALIZATION",
    7: "VIRTUALIZE_IA32_SPEC_CTRL",
}

PRIMARY_EXIT: Final[BitNames] = {
    2: "SAVE_DEBUG_CONTROLS",
    9: "HOST_ADDRESS_SPACE_SIZE",
    12: "LOAD_IA32_PERF_GLOBAL_CTRL",
    15: "ACKNOWLEDGE_INTERRUPT_ON_EXIT",
    18: "SAVE_IA32_PAT",
    19: "LOAD_IA32_PAT",
    20: "SAVE_IA32_EFER",
    21: "LOAD_IA32_EFER",
    22: "SAVE_PREEMPTION_TIMER_VALUE",
    23: "CLEAR_IA32_BNDCFGS",
    24: "CONCEAL_VMX_FROM_PT",
    25: "CLEAR_IA32_RTIT_CTL",
    26: "CLEAR_IA32_LBR_CTL",
    27: "CLEAR_UINV",
    28: "LOAD_CET_STATE",
    29: "LOAD_PKRS",
    30: "SAVE_IA32_PERF_GLOBAL_CTRL",
    31: "ACTIVATE_SECONDARY_CONTROLS",
}

#: 64-bit control (encoding 0x2044).
SECONDARY_EXIT: Final[BitNames] = {
    0: "SAVE_IA32_FRED",
    1: "LOAD_IA32_FRED",
}

ENTRY: Final[BitNames] = {
    2: "LOAD_DEBUG_CONTROLS",
    9: "IA32E_MODE_GUEST",
    10: "ENTRY_TO_SMM",
    11: "DEACTIVATE_DUAL_MONITOR_TREATMENT",
    13: "LOAD_IA32_PERF_GLOBAL_CTRL",
    14: "LOAD_IA32_PAT",
    15: "LOAD_IA32_EFER",
    16: "LOAD_IA32_BNDCFGS",
    17: "CONCEAL_VMX_FROM_PT",
    18: "LOAD_IA32_RTIT_CTL",
    19: "LOAD_UINV",
    20: "LOAD_CET_STATE",
    21: "LOAD_GUEST_IA32_LBR_CTL",
    22: "LOAD_PKRS",
    23: "LOAD_IA32_FRED",
}

VM_FUNCTIONS: Final[BitNames] = {0: "EPTP_SWITCHING"}

#: Reserved bits that must be 1 ("default1" class, SDM Vol. 3D A.2-A.5): named as such, not "unknown".
DEFAULT1: Final[Mapping[str, int]] = {
    "PIN_BASED_VM_EXEC_CONTROL": 0x0000_0016,
    "CPU_BASED_VM_EXEC_CONTROL": 0x0401_E172,
    "VM_EXIT_CONTROLS": 0x0003_6DFF,
    "VM_ENTRY_CONTROLS": 0x0000_11FF,
}

#: Control fields decoded bit by bit, by VMCS field name.
CONTROL_BITS: Final[Mapping[str, BitNames]] = {
    "PIN_BASED_VM_EXEC_CONTROL": PIN_BASED,
    "CPU_BASED_VM_EXEC_CONTROL": PRIMARY_PROCBASED,
    "SECONDARY_VM_EXEC_CONTROL": SECONDARY_PROCBASED,
    "TERTIARY_VM_EXEC_CONTROL": TERTIARY_PROCBASED,
    "VM_EXIT_CONTROLS": PRIMARY_EXIT,
    "SECONDARY_VM_EXIT_CONTROLS": SECONDARY_EXIT,
    "VM_ENTRY_CONTROLS": ENTRY,
    "VM_FUNCTION_CONTROL": VM_FUNCTIONS,
}


def bit_of(table: BitNames, name: str) -> int:
    """The bit number of a named control (KeyError if the table has no such name)."""
    for bit, n in table.items():
        if n == name:
            return bit
    raise KeyError(name)


def mask_of(table: BitNames, name: str) -> int:
    return 1 << bit_of(table, name)


def set_bits(value: int) -> list[int]:
    """The numbers of the bits set in value, lowest first."""
    out = []
    bit = 0
    while value:
        if value & 1:
            out.append(bit)
        value >>= 1
        bit += 1
    return out


def bit_names(value: int, table: BitNames) -> list[str]:
    """Names of the set bits, lowest first; an unnamed bit shows as ``bit<N>``."""
    return [table.get(b, f"bit{b}") for b in set_bits(value)]


def labels_on(*flags: tuple[bool, str]) -> list[str]:
    """The labels of the (flag, label) pairs whose flag is set, in order."""
    return [label for on, label in flags if on]


# ---- exceptions ------------------------------------------------------------------------------------

#: Exception and interrupt vectors 0-31 (SDM Vol. 3A 6.3.1, Table 6-1; #HV, #VC, #SX from AMD).
EXCEPTION_NAMES: Final[Mapping[int, str]] = {
    0: "#DE",
    1: "#DB",
    2: "NMI",
    3: "#BP",
    4: "#OF",
    5: "#BR",
    6: "#UD",
    7: "#NM",
    8: "#DF",
    9: "CSO",
    10: "#TS",
    11: "#NP",
    12: "#SS",
    13: "#GP",
    14: "#PF",
    16: "#MF",
    17: "#AC",
    18: "#MC",
    19: "#XM",
    20: "#VE",
    21: "#CP",
    28: "#HV",
    29: "#VC",
    30: "#SX",
}


def vector_name(vector: int) -> str:
    return EXCEPTION_NAMES.get(vector, f"vector {vector}")


def exception_bitmap_names(bitmap: int) -> list[str]:
    """The exceptions an exception bitmap intercepts (bit n = vector n), by name."""
    return [vector_name(v) for v in set_bits(bitmap & 0xFFFF_FFFF)]


# ---- segment access rights -------------------------------------------------------------------------

_DATA_TYPES: Final = (
    "data, read-only",
    "data, read-only, accessed",
    "data, read/write",
    "data, read/write, accessed",
    "data, read-only, expand-down",
    "data, read-only, expand-down, accessed",
    "data, read/write, expand-down",
    "data, read/write, expand-down, accessed",
    "code, execute-only",
    "code, execute-only, accessed",
    "code, execute/read",
    "code, execute/read, accessed",
    "code, execute-only, conforming",
    "code, execute-only, conforming, accessed",
    "code, execute/read, conforming",
    "code, execute/read, conforming, accessed",
)

#: System-segment and gate types in IA-32e mode (SDM Vol. 3A 3.5, Table 3-2).
_SYSTEM_TYPES: Final[Mapping[int, str]] = {
    1: "16-bit TSS (available)",
    2: "LDT",
    3: "16-bit TSS (busy)",
    4: "16-bit call gate",
    5: "task gate",
    6: "16-bit interrupt gate",
    7: "16-bit trap gate",
    9: "32/64-bit TSS (available)",
    11: "32/64-bit TSS (busy)",
    12: "32/64-bit call gate",
    14: "32/64-bit interrupt gate",
    15: "32/64-bit trap gate",
}


@dataclass(frozen=True)
class AccessRights:
    """Guest segment access rights as the VMCS holds them (SDM Vol. 3C 25.4.1, Table 25-2)."""

    type: int  # bits 3:0
    s: bool  # bit 4: 1 = code or data, 0 = system
    dpl: int  # bits 6:5
    p: bool  # bit 7
    avl: bool  # bit 12
    l: bool  # bit 13: 64-bit code segment  # noqa: E741
    db: bool  # bit 14: default operation size
    g: bool  # bit 15: granularity
    unusable: bool  # bit 16

    @property
    def type_name(self) -> str:
        if self.s:
            return _DATA_TYPES[self.type]
        return _SYSTEM_TYPES.get(self.type, f"reserved system type {self.type}")

    def describe(self) -> str:
        if self.unusable:
            return "unusable"
        return (
            f"type={self.type:#x} ({self.type_name}) S={int(self.s)} DPL={self.dpl} P={int(self.p)} "
            f"AVL={int(self.avl)} L={int(self.l)} D/B={int(self.db)} G={int(self.g)}"
        )


def decode_access_rights(ar: int) -> AccessRights:
    return AccessRights(
        type=ar & 0xF,
        s=bool(ar >> 4 & 1),
        dpl=ar >> 5 & 3,
        p=bool(ar >> 7 & 1),
        avl=bool(ar >> 12 & 1),
        l=bool(ar >> 13 & 1),
        db=bool(ar >> 14 & 1),
        g=bool(ar >> 15 & 1),
        unusable=bool(ar >> 16 & 1),
    )


# ---- guest non-register state ----------------------------------------------------------------------

INTERRUPTIBILITY: Final[BitNames] = {
    0: "BLOCKING_BY_STI",
    1: "BLOCKING_BY_MOV_SS",
    2: "BLOCKING_BY_SMI",
    3: "BLOCKING_BY_NMI",
    4: "ENCLAVE_INTERRUPTION",
}

ACTIVITY_STATES: Final[Mapping[int, str]] = {0: "ACTIVE", 1: "HLT", 2: "SHUTDOWN", 3: "WAIT_FOR_SIPI"}


def activity_state_name(state: int) -> str:
    return ACTIVITY_STATES.get(state, f"reserved ({state})")


PENDING_DEBUG: Final[BitNames] = {
    0: "B0",
    1: "B1",
    2: "B2",
    3: "B3",
    11: "BLD",
    12: "ENABLED_BREAKPOINT",
    14: "BS",
    16: "RTM",
}

# ---- VM-instruction errors (Table 31-1), exactly as hv/vmx/names.c ---------------------------------

VM_INSTRUCTION_ERRORS: Final[Mapping[int, str]] = {
    1: "VMCALL executed in VMX root operation",
    2: "VMCLEAR with invalid physical address",
    3: "VMCLEAR with VMXON pointer",
    4: "VMLAUNCH with non-clear VMCS",
    5: "VMRESUME with non-launched VMCS",
    6: "VMRESUME after VMXOFF",
    7: "VM entry with invalid control field(s)",
    8: "VM entry with invalid host-state field(s)",
    9: "VMPTRLD with invalid physical address",
    10: "VMPTRLD with VMXON pointer",
    11: "VMPTRLD with incorrect VMCS revision identifier",
    12: "VMREAD/VMWRITE from/to unsupported VMCS component",
    13: "VMWRITE to read-only VMCS component",
    15: "VMXON executed in VMX root operation",
    16: "VM entry with invalid executive-VMCS pointer",
    17: "VM entry with non-launched executive VMCS",
    18: "VM entry with executive-VMCS pointer not VMXON pointer",
    19: "VMCALL with non-clear VMCS",
    20: "VMCALL with invalid VM-exit control fields",
    22: "VMCALL with incorrect MSEG revision identifier",
    23: "VMXOFF under dual-monitor treatment of SMIs and SMM",
    24: "VMCALL with invalid SMM-monitor features",
    25: "VM entry with invalid VM-execution control fields in executive VMCS",
    26: "VM entry with events blocked by MOV SS",
    28: "Invalid operand to INVEPT/INVVPID",
}


def vm_instruction_error_name(err: int) -> str:
    """As vmx_instruction_error_name() in hv/vmx/names.c."""
    return VM_INSTRUCTION_ERRORS.get(err, "unknown VM-instruction error")


# ---- control registers and flags -------------------------------------------------------------------

CR0_BITS: Final[BitNames] = {
    0: "PE",
    1: "MP",
    2: "EM",
    3: "TS",
    4: "ET",
    5: "NE",
    16: "WP",
    18: "AM",
    29: "NW",
    30: "CD",
    31: "PG",
}

CR4_BITS: Final[BitNames] = {
    0: "VME",
    1: "PVI",
    2: "TSD",
    3: "DE",
    4: "PSE",
    5: "PAE",
    6: "MCE",
    7: "PGE",
    8: "PCE",
    9: "OSFXSR",
    10: "OSXMMEXCPT",
    11: "UMIP",
    12: "LA57",
    13: "VMXE",
    14: "SMXE",
    16: "FSGSBASE",
    17: "PCIDE",
    18: "OSXSAVE",
    19: "KL",
    20: "SMEP",
    21: "SMAP",
    22: "PKE",
    23: "CET",
    24: "PKS",
    25: "UINTR",
    27: "LASS",
    28: "LAM_SUP",
    32: "FRED",
}

EFER_BITS: Final[BitNames] = {
    0: "SCE",
    8: "LME",
    10: "LMA",
    11: "NXE",
    12: "SVME",
    13: "LMSLE",
    14: "FFXSR",
    15: "TCE",
}

RFLAGS_BITS: Final[BitNames] = {
    0: "CF",
    1: "1",
    2: "PF",
    4: "AF",
    6: "ZF",
    7: "SF",
    8: "TF",
    9: "IF",
    10: "DF",
    11: "OF",
    14: "NT",
    16: "RF",
    17: "VM",
    18: "AC",
    19: "VIF",
    20: "VIP",
    21: "ID",
}


def describe_rflags(value: int) -> str:
    names = [n for n in bit_names(value & ~(3 << 12), RFLAGS_BITS) if n != "1"]
    return " ".join([*names, f"IOPL={value >> 12 & 3}"])
