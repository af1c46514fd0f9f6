"""AMD-V #VMEXIT codes (AMD64 APM Vol. 2, Appendix C "SVM Intercept Exit Codes", Table C-1).

Records carry the low 16 bits of EXITCODE; VMEXIT_INVALID (-1) is recorded as 0xffff (abi.h).
"""

from __future__ import annotations

from typing import Final


def _table() -> dict[int, str]:
    t: dict[int, str] = {}
    for n in range(16):
        t[0x00 + n] = f"CR{n}_READ"
        t[0x10 + n] = f"CR{n}_WRITE"
        t[0x20 + n] = f"DR{n}_READ"
        t[0x30 + n] = f"DR{n}_WRITE"
        t[0x90 + n] = f"CR{n}_WRITE_TRAP"
    for n in range(32):
        t[0x40 + n] = f"EXCP{n}"
    names = [
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
    ]
    for i, name in enumerate(names):
        t[0x60 + i] = name
    for i, name in enumerate(("INVLPGB", "INVLPGB_ILLEGAL", "INVPCID", "MCOMMIT", "TLBSYNC")):
        t[0xA0 + i] = name
    for i, name in enumerate(("NPF", "AVIC_INCOMPLETE_IPI", "AVIC_NOACCEL", "VMGEXIT")):
        t[0x400 + i] = name
    t[0xFFFF] = "INVALID"
    return t


#: EXITCODE -> name (APM names without the VMEXIT_ prefix).
EXIT_CODES: Final[dict[int, str]] = _table()


def exit_code_name(code: int) -> str:
    """Name of an SVM exit code, ``UNKNOWN`` when the APM table has none."""
    return EXIT_CODES.get(code, "UNKNOWN")
