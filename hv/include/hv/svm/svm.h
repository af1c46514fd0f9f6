/*
 * AMD-V back end: MSRs, intercept bits, exit codes and the per-CPU SVM state.
 * AMD APM Vol. 2 chapter 15 "Secure Virtual Machine" and appendices B (VMCB) and C (exit codes).
 */
#ifndef HV_SVM_SVM_H
#define HV_SVM_SVM_H

#include <hv/percpu.h>
#include <hv/svm/vmcb.h>
#include <hv/types.h>

/* MSRs (APM 15.30 "SVM Related MSRs", Vol. 2 Appendix A). */
#define MSR_VM_CR           0xc0010114
#define VM_CR_LOCK          (1ull << 3)
#define VM_CR_SVMDIS        (1ull << 4)
#define MSR_VM_HSAVE_PA     0xc0010117
#define MSR_IA32_PAT        0x277
#define MSR_IA32_TSC_AUX    0xc0000103
#define MSR_IA32_VMX_BASIC  0x480       /* Intel-only; hidden (#GP) like under the VT-x back end */
#define MSR_IA32_VMX_VMFUNC 0x491
#define EFER_SCE            (1ull << 0)
#define EFER_LME            (1ull << 8)
#define EFER_LMA            (1ull << 10)
#define EFER_NXE            (1ull << 11)
#define EFER_SVME           (1ull << 12)
#define EFER_LMSLE          (1ull << 13)
#define EFER_FFXSR          (1ull << 14)
#define EFER_TCE            (1ull << 15)

/* CPUID (APM Vol. 3 Appendix E). */
#define CPUID_80000001_ECX_SVM   (1u << 2)
#define CPUID_8000000A_EDX_NP    (1u << 0)
#define CPUID_8000000A_EDX_NRIPS (1u << 3)
#define CPUID_8000000A_EDX_FLUSH_BY_ASID (1u << 6)

/* Instruction intercepts, VMCB offset 0x00c (APM Table B-1). */
#define SVM_INTERCEPT1_INTR     (1u << 0)
#define SVM_INTERCEPT1_NMI      (1u << 1)
#define SVM_INTERCEPT1_SMI      (1u << 2)
#define SVM_INTERCEPT1_RDPMC    (1u << 15)
#define SVM_INTERCEPT1_CPUID    (1u << 18)
#define SVM_INTERCEPT1_IRET     (1u << 20)
#define SVM_INTERCEPT1_INVD     (1u << 22)
#define SVM_INTERCEPT1_HLT      (1u << 24)
#define SVM_INTERCEPT1_IOIO     (1u << 27)
#define SVM_INTERCEPT1_MSR_PROT (1u << 28)
#define SVM_INTERCEPT1_SHUTDOWN (1u << 31)
/* VMCB offset 0x010. */
#define SVM_INTERCEPT2_VMRUN    (1u << 0)
#define SVM_INTERCEPT2_VMMCALL  (1u << 1)
#define SVM_INTERCEPT2_VMLOAD   (1u << 2)
#define SVM_INTERCEPT2_VMSAVE   (1u << 3)
#define SVM_INTERCEPT2_STGI     (1u << 4)
#define SVM_INTERCEPT2_CLGI     (1u << 5)
#define SVM_INTERCEPT2_SKINIT   (1u << 6)
#define SVM_INTERCEPT2_WBINVD   (1u << 9)
#define SVM_INTERCEPT2_XSETBV   (1u << 13)

/* Exit codes (APM Vol. 2 Appendix C, Table C-1). */
enum svm_exit_code {
    SVM_EXIT_CR0_READ = 0x00, SVM_EXIT_CR0_WRITE = 0x10, SVM_EXIT_CR3_WRITE = 0x13, SVM_EXIT_CR4_WRITE = 0x14,
    SVM_EXIT_DR0_READ = 0x20, SVM_EXIT_DR0_WRITE = 0x30, SVM_EXIT_EXCP_BASE = 0x40, SVM_EXIT_EXCP_DB = 0x41,
    SVM_EXIT_EXCP_UD = 0x46,
    SVM_EXIT_INTR = 0x60, SVM_EXIT_NMI = 0x61, SVM_EXIT_SMI = 0x62, SVM_EXIT_INIT = 0x63, SVM_EXIT_VINTR = 0x64,
    SVM_EXIT_RDPMC = 0x6f, SVM_EXIT_CPUID = 0x72, SVM_EXIT_IRET = 0x74, SVM_EXIT_INVD = 0x76, SVM_EXIT_HLT = 0x78,
    SVM_EXIT_IOIO = 0x7b, SVM_EXIT_MSR = 0x7c, SVM_EXIT_SHUTDOWN = 0x7f, SVM_EXIT_VMRUN = 0x80,
    SVM_EXIT_VMMCALL = 0x81, SVM_EXIT_VMLOAD = 0x82, SVM_EXIT_VMSAVE = 0x83, SVM_EXIT_STGI = 0x84,
    SVM_EXIT_CLGI = 0x85, SVM_EXIT_SKINIT = 0x86, SVM_EXIT_RDTSCP = 0x87, SVM_EXIT_ICEBP = 0x88,
    SVM_EXIT_WBINVD = 0x89, SVM_EXIT_XSETBV = 0x8d, SVM_EXIT_NPF = 0x400,
};
#define SVM_EXIT_INVALID ((u64)-1)      /* VMRUN with an illegal VMCB (APM 15.5.1) */

/* Exit counters: codes 0x00-0xff at their own index, then #NPF and VMEXIT_INVALID. */
#define SVM_EXIT_IDX_NPF     0x100
#define SVM_EXIT_IDX_INVALID 0x101
#define SVM_EXIT_IDX_COUNT   0x102
/* Index for a code, or -1 when the code has no counter (unknown AVIC/VMGEXIT codes). */
int svm_exit_index(u64 code);
const char *svm_exit_name(u64 code);

/* General-purpose registers as the VMRUN loop saves them (svm/launch.S): same layout as VT-x. RSP
 * lives in the VMCB; RAX too, but the dispatcher copies it into the frame and back. */
struct guest_regs {
    u64 rax, rcx, rdx, rbx, rsp_unused, rbp, rsi, rdi;
    u64 r8, r9, r10, r11, r12, r13, r14, r15;
};
_Static_assert(sizeof(struct guest_regs) == 16 * 8, "exit frame: 16 GPR slots");

/* Per-CPU SVM state. */
struct svm_cpu {
    struct vmcb *vmcb;
    void *hsave;                /* VM_HSAVE_PA: where VMRUN saves host state (APM 15.30.4) */
    struct vmcb *host_vmcb;     /* VMSAVE / VMLOAD area of the host's FS, GS, TR, LDTR, syscall MSRs */
    u8 *msrpm;                  /* 8 KiB MSR permission map (APM 15.11) */
    u8 *iopm;                   /* 12 KiB I/O permission map (APM 15.10.1), all zero */
    u64 host_stack_top;
    u32 asid;
    bool nrips;                 /* CPUID 8000_000Ah:EDX.NRIPS: the CPU fills next_rip */
    bool step_guest_tf;         /* the guest's own RFLAGS.TF while apic_step single-steps it */
    u32 step_exc_saved;         /* the exception intercepts from before (every vector intercepted meanwhile) */
    bool lme_off_vmcb;          /* the guest's EFER.LME while its paging is off, kept out of the VMCB (vcpu.c) */
    u64 halt_rip, halt_next;    /* that HLT, and the RIP after it */
    bool halt_atomic;           /* that HLT runs before any interrupt (a shadow: STI; HLT), svm/halt.c */
    u64 exits[SVM_EXIT_IDX_COUNT];
};

/* Shared by every CPU: nested paging must exist; next-RIP saving is optional (not under TCG). */
struct svm_caps {
    bool nrips;
    bool flush_by_asid;         /* CPUID 8000_000Ah:EDX.FlushByAsid[6]: TLB_CONTROL 3 (not under TCG) */
    u32 cpuid_80000001_edx;
    u64 cr4_allowed;            /* CR4 bits this CPU implements (CPUID); the rest are reserved: #GP */
};
extern struct svm_caps svm_caps;

bool svm_enable(struct percpu *pc);
/* Blue pill: returns 0 in the guest; a failed first VMRUN is reported by the exit path and ends the run. */
int svm_start(struct percpu *pc);
/* Called by svm_start (asm): fills the VMCB and enters the VMRUN loop; returns only on setup failure. */
int svm_setup_and_launch(struct percpu *pc, u64 guest_rsp, u64 guest_rip);
struct guest_start;
/* Fills the VMCB for a loaded guest (guest.h) and enters the VMRUN loop; returns only on failure. */
int svm_start_guest(struct percpu *pc, const struct guest_start *gs);
/* The VMRUN loop on the VMM stack (launch.S); never returns. */
__noreturn void svm_vmrun_loop(u64 stack_top, u64 vmcb_pa, u64 host_vmcb_pa, const u64 *regs);
/*
 * The C exit dispatcher, called by the VMRUN loop with the saved GPRs (svm/exit_fast.c: CPUID's fast
 * path there, every other exit svm_exit_full(), svm/exit.c).
 */
void svm_exit_dispatch(struct guest_regs *regs, struct vmcb *v);
void svm_exit_full(struct percpu *pc, struct svm_cpu *s, struct guest_regs *regs);
/* VMRUN failed (VMEXIT_INVALID): the first consistency rule of APM 15.5.1 the VMCB breaks, or NULL. */
const char *svm_vmcb_invalid_field(const struct vmcb *v);
/* Print the VMCB's control area and key save-area fields. */
void svm_dump_vmcb(const struct vmcb *v);
void svm_snapshot(struct percpu *pc, u32 why);
/* Length of the exiting instruction at rip (only the instructions hvtrace intercepts), 0 if unknown. */
/*
 * The length of the instruction at 'p' (n bytes readable) that raised #VMEXIT 'code', or 0 when the
 * bytes are not an instruction that raises that exit (insn_len.c).
 */
u32 svm_insn_len(const u8 *p, u32 n, bool long_mode, u64 code);
/* The offset of the opcode after legacy prefixes and REX (returned in *rex, 0 if none). */
u32 svm_insn_prefixes(const u8 *p, u32 n, bool long_mode, u8 *rex);

#endif
