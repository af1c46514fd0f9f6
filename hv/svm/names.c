/* Names for SVM exit codes (AMD APM Vol. 2 Appendix C, Table C-1) and their counter index. */
#include <hv/svm/svm.h>

/* Rows: 0x00 CR reads, 0x10 CR writes, 0x20 DR reads, 0x30 DR writes, 0x90 CR write traps. */
static const char *const cr_dr_names[5][16] = {
    { "CR0_READ", "CR1_READ", "CR2_READ", "CR3_READ", "CR4_READ", "CR5_READ", "CR6_READ", "CR7_READ",
      "CR8_READ", "CR9_READ", "CR10_READ", "CR11_READ", "CR12_READ", "CR13_READ", "CR14_READ", "CR15_READ" },
    { "CR0_WRITE", "CR1_WRITE", "CR2_WRITE", "CR3_WRITE", "CR4_WRITE", "CR5_WRITE", "CR6_WRITE", "CR7_WRITE",
      "CR8_WRITE", "CR9_WRITE", "CR10_WRITE", "CR11_WRITE", "CR12_WRITE", "CR13_WRITE", "CR14_WRITE", "CR15_WRITE" },
    { "DR0_READ", "DR1_READ", "DR2_READ", "DR3_READ", "DR4_READ", "DR5_READ", "DR6_READ", "DR7_READ",
      "DR8_READ", "DR9_READ", "DR10_READ", "DR11_READ", "DR12_READ", "DR13_READ", "DR14_READ", "DR15_READ" },
    { "DR0_WRITE", "DR1_WRITE", "DR2_WRITE", "DR3_WRITE", "DR4_WRITE", "DR5_WRITE", "DR6_WRITE", "DR7_WRITE",
      "DR8_WRITE", "DR9_WRITE", "DR10_WRITE", "DR11_WRITE", "DR12_WRITE", "DR13_WRITE", "DR14_WRITE", "DR15_WRITE" },
    { "CR0_WRITE_TRAP", "CR1_WRITE_TRAP", "CR2_WRITE_TRAP", "CR3_WRITE_TRAP", "CR4_WRITE_TRAP", "CR5_WRITE_TRAP",
      "CR6_WRITE_TRAP", "CR7_WRITE_TRAP", "CR8_WRITE_TRAP", "CR9_WRITE_TRAP", "CR10_WRITE_TRAP", "CR11_WRITE_TRAP",
      "CR12_WRITE_TRAP", "CR13_WRITE_TRAP", "CR14_WRITE_TRAP", "CR15_WRITE_TRAP" },
};

/* 0x40 + vector: the exception mnemonics of APM Vol. 2 Table 8-1. */
static const char *const excp_names[32] = {
    "EXCP_DE", "EXCP_DB", "EXCP_NMI", "EXCP_BP", "EXCP_OF", "EXCP_BR", "EXCP_UD", "EXCP_NM",
    "EXCP_DF", "EXCP_9", "EXCP_TS", "EXCP_NP", "EXCP_SS", "EXCP_GP", "EXCP_PF", "EXCP_15",
    "EXCP_MF", "EXCP_AC", "EXCP_MC", "EXCP_XF", "EXCP_20", "EXCP_CP", "EXCP_22", "EXCP_23",
    "EXCP_24", "EXCP_25", "EXCP_26", "EXCP_27", "EXCP_HV", "EXCP_VC", "EXCP_SX", "EXCP_31",
};

static const char *const misc_names[0x100 - 0x60] = {
    [0x60 - 0x60] = "INTR", [0x61 - 0x60] = "NMI", [0x62 - 0x60] = "SMI", [0x63 - 0x60] = "INIT",
    [0x64 - 0x60] = "VINTR", [0x65 - 0x60] = "CR0_SEL_WRITE", [0x66 - 0x60] = "IDTR_READ",
    [0x67 - 0x60] = "GDTR_READ", [0x68 - 0x60] = "LDTR_READ", [0x69 - 0x60] = "TR_READ",
    [0x6a - 0x60] = "IDTR_WRITE", [0x6b - 0x60] = "GDTR_WRITE", [0x6c - 0x60] = "LDTR_WRITE",
    [0x6d - 0x60] = "TR_WRITE", [0x6e - 0x60] = "RDTSC", [0x6f - 0x60] = "RDPMC", [0x70 - 0x60] = "PUSHF",
    [0x71 - 0x60] = "POPF", [0x72 - 0x60] = "CPUID", [0x73 - 0x60] = "RSM", [0x74 - 0x60] = "IRET",
    [0x75 - 0x60] = "SWINT", [0x76 - 0x60] = "INVD", [0x77 - 0x60] = "PAUSE", [0x78 - 0x60] = "HLT",
    [0x79 - 0x60] = "INVLPG", [0x7a - 0x60] = "INVLPGA", [0x7b - 0x60] = "IOIO", [0x7c - 0x60] = "MSR",
    [0x7d - 0x60] = "TASK_SWITCH", [0x7e - 0x60] = "FERR_FREEZE", [0x7f - 0x60] = "SHUTDOWN",
    [0x80 - 0x60] = "VMRUN", [0x81 - 0x60] = "VMMCALL", [0x82 - 0x60] = "VMLOAD", [0x83 - 0x60] = "VMSAVE",
    [0x84 - 0x60] = "STGI", [0x85 - 0x60] = "CLGI", [0x86 - 0x60] = "SKINIT", [0x87 - 0x60] = "RDTSCP",
    [0x88 - 0x60] = "ICEBP", [0x89 - 0x60] = "WBINVD", [0x8a - 0x60] = "MONITOR", [0x8b - 0x60] = "MWAIT",
    [0x8c - 0x60] = "MWAIT_CONDITIONAL", [0x8d - 0x60] = "XSETBV", [0x8e - 0x60] = "RDPRU",
    [0x8f - 0x60] = "EFER_WRITE_TRAP", [0xa0 - 0x60] = "INVLPGB", [0xa1 - 0x60] = "INVLPGB_ILLEGAL",
    [0xa2 - 0x60] = "INVPCID", [0xa3 - 0x60] = "MCOMMIT", [0xa4 - 0x60] = "TLBSYNC", [0xa5 - 0x60] = "BUS_LOCK", [0xa6 - 0x60] = "IDLE_HLT",
};

int svm_exit_index(u64 code)
{
    if (code < 0x100)
        return (int)code;
    if (code == SVM_EXIT_NPF)
        return SVM_EXIT_IDX_NPF;
    if (code == SVM_EXIT_INVALID)
        return SVM_EXIT_IDX_INVALID;
    return -1;
}

const char *svm_exit_name(u64 code)
{
    if (code < 0x40)
        return cr_dr_names[code >> 4][code & 15];
    if (code < 0x60)
        return excp_names[code - 0x40];
    if (code >= 0x90 && code < 0xa0)
        return cr_dr_names[4][code & 15];
    if (code < 0x100 && misc_names[code - 0x60])
        return misc_names[code - 0x60];
    switch (code) {
    case SVM_EXIT_NPF: return "NPF";
    case 0x401: return "AVIC_INCOMPLETE_IPI";
    case 0x402: return "AVIC_NOACCEL";
    case 0x403: return "VMGEXIT";
    case SVM_EXIT_INVALID: return "VMEXIT_INVALID";
    case (u64)-2: return "VMEXIT_BUSY";
    }
    return "UNKNOWN";
}
