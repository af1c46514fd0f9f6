"""VT-x basic exit reasons (Intel SDM Vol. 3D Appendix C, "VMX Basic Exit Reasons", Table C-1).

Mirrors ``exit_reasons[]`` in hv/vmx/names.c (same names), so host tools print what the hypervisor prints.
"""

from __future__ import annotations

from typing import Final

#: Basic exit reason (bits 15:0 of the exit-reason field) -> name.
EXIT_REASONS: Final[dict[int, str]] = {
    0: "EXCEPTION_NMI", 1: "EXTERNAL_INTERRUPT", 2: "TRIPLE_FAULT", 3: "INIT_SIGNAL",
    4: "SIPI", 5: "IO_SMI", 6: "OTHER_SMI", 7: "INTERRUPT_WINDOW", 8: "NMI_WINDOW",
    9: "TASK_SWITCH", 10: "CPUID", 11: "GETSEC", 12: "HLT", 13: "INVD", 14: "INVLPG",
    15: "RDPMC", 16: "RDTSC", 17: "RSM", 18: "VMCALL", 19: "VMCLEAR", 20: "VMLAUNCH",
    21: "VMPTRLD", 22: "VMPTRST", 23: "VMREAD", 24: "VMRESUME", 25: "VMWRITE",
    26: "VMXOFF", 27: "VMXON", 28: "CR_ACCESS", 29: "DR_ACCESS", 30: "IO_INSTRUCTION",
    31: "MSR_READ", 32: "MSR_WRITE", 33: "INVALID_GUEST_STATE", 34: "MSR_LOADING",
    36: "MWAIT", 37: "MONITOR_TRAP_FLAG", 39: "MONITOR", 40: "PAUSE", 41: "MACHINE_CHECK",
    43: "TPR_BELOW_THRESHOLD", 44: "APIC_ACCESS", 45: "VIRTUALIZED_EOI", 46: "GDTR_IDTR",
    47: "LDTR_TR", 48: "EPT_VIOLATION", 49: "EPT_MISCONFIG", 50: "INVEPT", 51: "RDTSCP",
    52: "PREEMPTION_TIMER", 53: "INVVPID", 54: "WBINVD", 55: "XSETBV", 56: "APIC_WRITE",
    57: "RDRAND", 58: "INVPCID", 59: "VMFUNC", 60: "ENCLS", 61: "RDSEED",
    62: "PML_FULL", 63: "XSAVES", 64: "XRSTORS", 66: "SPP_EVENT", 67: "UMWAIT",
    68: "TPAUSE", 69: "LOADIWKEY", 74: "BUS_LOCK", 75: "NOTIFY",
}  # fmt: skip

#: Bit 31 of the exit-reason field: VM-entry failure (SDM Vol. 3C 28.2.1).
EXIT_REASON_ENTRY_FAILURE: Final = 1 << 31


def exit_reason_name(reason: int) -> str:
    """Name of a basic exit reason (bits 15:0), ``UNKNOWN`` like names.c for reasons it lacks."""
    return EXIT_REASONS.get(reason & 0xFFFF, "UNKNOWN")
