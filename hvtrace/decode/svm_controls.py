"""AMD-V VMCB control bits: intercept vectors, virtual interrupt control, nested paging, clean bits,
TLB control (AMD64 APM Vol. 2, Appendix B Table B-1; 15.15.3 VMCB clean bits; 15.16.1 TLB control).

The twin of vmx_controls for the SVM back end; hvtrace.decode.vmcb_view decodes VMCB fields with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from hvtrace.decode.vmx_controls import BitNames

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
