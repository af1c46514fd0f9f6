/*
 * VT-x back end: MSRs, control bits, exit reasons and the per-CPU VMX state.
 * SDM Vol. 3C chapters 25-31 and Vol. 3D appendices A-C.
 */
#ifndef HV_VMX_VMX_H
#define HV_VMX_VMX_H

#include <hv/percpu.h>
#include <hv/types.h>

/* Capability MSRs (SDM Vol. 3D Appendix A). */
#define MSR_IA32_FEATURE_CONTROL     0x3a
#define FEATURE_CONTROL_LOCKED       (1ull << 0)
#define FEATURE_CONTROL_VMXON_IN_SMX (1ull << 1)
#define FEATURE_CONTROL_VMXON        (1ull << 2)
#define MSR_IA32_VMX_BASIC           0x480
#define MSR_IA32_VMX_PINBASED_CTLS   0x481
#define MSR_IA32_VMX_PROCBASED_CTLS  0x482
#define MSR_IA32_VMX_EXIT_CTLS       0x483
#define MSR_IA32_VMX_ENTRY_CTLS      0x484
#define MSR_IA32_VMX_MISC            0x485
#define MSR_IA32_VMX_CR0_FIXED0      0x486
#define MSR_IA32_VMX_CR0_FIXED1      0x487
#define MSR_IA32_VMX_CR4_FIXED0      0x488
#define MSR_IA32_VMX_CR4_FIXED1      0x489
#define MSR_IA32_VMX_VMCS_ENUM       0x48a
#define MSR_IA32_VMX_PROCBASED_CTLS2 0x48b
#define MSR_IA32_VMX_EPT_VPID_CAP    0x48c
#define MSR_IA32_VMX_TRUE_PINBASED   0x48d
#define MSR_IA32_VMX_TRUE_PROCBASED  0x48e
#define MSR_IA32_VMX_TRUE_EXIT       0x48f
#define MSR_IA32_VMX_TRUE_ENTRY      0x490
#define MSR_IA32_VMX_VMFUNC          0x491
#define MSR_IA32_PAT                 0x277
#define MSR_IA32_DEBUGCTL            0x1d9
#define MSR_IA32_SYSENTER_CS         0x174
#define MSR_IA32_SYSENTER_ESP        0x175
#define MSR_IA32_SYSENTER_EIP        0x176
#define MSR_IA32_TSC_AUX             0xc0000103

#define VMX_BASIC_TRUE_CTLS          (1ull << 55)

/* Pin-based controls (SDM Vol. 3C 26.6.1). */
#define PIN_EXTERNAL_INTERRUPT_EXITING (1u << 0)
#define PIN_NMI_EXITING              (1u << 3)
#define PIN_VIRTUAL_NMIS             (1u << 5)
#define PIN_PREEMPTION_TIMER         (1u << 6)
/* Primary processor-based controls (26.6.2, Table 26-6). */
#define CPU_USE_TSC_OFFSETTING       (1u << 3)
#define CPU_HLT_EXITING              (1u << 7)
#define CPU_RDPMC_EXITING            (1u << 11)
#define CPU_NMI_WINDOW_EXITING       (1u << 22)
#define CPU_CR3_LOAD_EXITING         (1u << 15)
#define CPU_CR3_STORE_EXITING        (1u << 16)
#define CPU_USE_IO_BITMAPS           (1u << 25)
#define CPU_MONITOR_TRAP_FLAG        (1u << 27)
#define CPU_USE_MSR_BITMAPS          (1u << 28)
#define CPU_ACTIVATE_SECONDARY       (1u << 31)
/* Secondary processor-based controls (Table 26-7). */
#define CPU2_ENABLE_EPT              (1u << 1)
#define CPU2_ENABLE_RDTSCP           (1u << 3)
#define CPU2_ENABLE_VPID             (1u << 5)
#define CPU2_UNRESTRICTED_GUEST      (1u << 7)
#define CPU2_ENABLE_INVPCID          (1u << 12)
#define CPU2_ENABLE_XSAVES           (1u << 20)
/* VM-exit controls (26.7.1). */
#define EXIT_SAVE_DEBUG_CONTROLS     (1u << 2)
#define EXIT_HOST_ADDR_SPACE_SIZE    (1u << 9)
#define EXIT_ACK_INTR_ON_EXIT        (1u << 15)
#define EXIT_SAVE_PAT                (1u << 18)
#define EXIT_LOAD_PAT                (1u << 19)
#define EXIT_SAVE_EFER               (1u << 20)
#define EXIT_LOAD_EFER               (1u << 21)
/* VM-entry controls (26.8.1). */
#define ENTRY_LOAD_DEBUG_CONTROLS    (1u << 2)
#define ENTRY_IA32E_MODE_GUEST       (1u << 9)
#define ENTRY_LOAD_PAT               (1u << 14)
#define ENTRY_LOAD_EFER              (1u << 15)

/* IA32_VMX_MISC (Appendix A.6): bit 6, VM entry may load the HLT activity state. */
#define VMX_MISC_ACTIVITY_HLT        (1ull << 6)
/* Guest activity state (SDM Vol. 3C 25.4.2, Table 25-3). */
#define GUEST_ACTIVITY_ACTIVE        0
#define GUEST_ACTIVITY_HLT           1

/* EPT/VPID capabilities (Appendix A.10). */
#define EPT_CAP_WALK_4               (1ull << 6)
#define EPT_CAP_WB                   (1ull << 14)
#define EPT_CAP_2M                   (1ull << 16)
#define EPT_CAP_1G                   (1ull << 17)
#define EPT_CAP_INVEPT               (1ull << 20)
#define EPT_CAP_INVEPT_SINGLE        (1ull << 25)
#define EPT_CAP_INVEPT_ALL           (1ull << 26)
#define VPID_CAP_INVVPID             (1ull << 32)
#define VPID_CAP_INVVPID_SINGLE      (1ull << 41)
#define VPID_CAP_INVVPID_ALL         (1ull << 42)
#define VPID_CAP_INVVPID_SINGLE_KEEP_GLOBALS (1ull << 43)


/* Basic exit reasons (SDM Vol. 3D Appendix C, Table C-1). */
enum vmx_exit_reason {
    EXIT_REASON_EXCEPTION_NMI = 0, EXIT_REASON_EXTERNAL_INTERRUPT = 1, EXIT_REASON_TRIPLE_FAULT = 2,
    EXIT_REASON_INIT = 3, EXIT_REASON_SIPI = 4, EXIT_REASON_NMI_WINDOW = 8, EXIT_REASON_TASK_SWITCH = 9, EXIT_REASON_CPUID = 10,
    EXIT_REASON_GETSEC = 11, EXIT_REASON_HLT = 12,
    EXIT_REASON_INVD = 13, EXIT_REASON_VMCALL = 18, EXIT_REASON_VMCLEAR = 19, EXIT_REASON_VMLAUNCH = 20,
    EXIT_REASON_VMPTRLD = 21, EXIT_REASON_VMPTRST = 22, EXIT_REASON_VMREAD = 23, EXIT_REASON_VMRESUME = 24,
    EXIT_REASON_VMWRITE = 25, EXIT_REASON_VMXOFF = 26, EXIT_REASON_VMXON = 27, EXIT_REASON_CR_ACCESS = 28,
    EXIT_REASON_IO_INSTRUCTION = 30, EXIT_REASON_MSR_READ = 31, EXIT_REASON_MSR_WRITE = 32,
    EXIT_REASON_INVALID_GUEST_STATE = 33, EXIT_REASON_MONITOR_TRAP_FLAG = 37, EXIT_REASON_MSR_LOADING = 34, EXIT_REASON_MACHINE_CHECK = 41,
    EXIT_REASON_EPT_VIOLATION = 48, EXIT_REASON_EPT_MISCONFIG = 49, EXIT_REASON_INVEPT = 50,
    EXIT_REASON_PREEMPTION_TIMER = 52, EXIT_REASON_INVVPID = 53, EXIT_REASON_WBINVD = 54, EXIT_REASON_XSETBV = 55, EXIT_REASON_VMFUNC = 59,
    VMX_EXIT_REASON_COUNT = 78,
};
#define EXIT_REASON_ENTRY_FAILURE (1u << 31)

/* VM-entry interruption information (26.8.3, Table 26-17). */
#define INTR_INFO_VALID            (1u << 31)
#define INTR_INFO_DELIVER_CODE     (1u << 11)
#define INTR_TYPE_NMI              (2u << 8)
#define INTR_TYPE_HARD_EXCEPTION   (3u << 8)
#define INTR_TYPE_SOFT_EXCEPTION   (6u << 8)
#define INTR_INFO_NMI_UNBLOCKED    (1u << 12)   /* exit info only: NMI unblocking due to IRET (28.2.3) */
/* Pending debug exceptions: BS, a single-step trap (26.4.2, Table 26-4). */
#define PENDING_DBG_BS             (1ull << 14)

/* The controls and limits computed once from the capability MSRs, identical on every CPU. */
struct vmx_caps {
    u32 revision_id;
    bool true_ctls;
    u32 pin, cpu, cpu2, exit, entry;
    u64 cr0_fixed0, cr0_fixed1, cr4_fixed0, cr4_fixed1;
    u64 ept_vpid_cap;
    u64 vmcs_enum_max_index;
};

/* General-purpose registers as the exit stub saves them (vmx/exit.S): RSP lives in the VMCS. */
struct guest_regs {
    u64 rax, rcx, rdx, rbx, rsp_unused, rbp, rsi, rdi;
    u64 r8, r9, r10, r11, r12, r13, r14, r15;
};
_Static_assert(sizeof(struct guest_regs) == 16 * 8, "exit frame: 16 GPR slots");

/* Per-CPU VMX state (the seed's VMMInitState, docs/walkthrough.md step 5). */
struct vmx_cpu {
    void *vmxon_region;
    void *vmcs_region;
    u8 *msr_bitmap;
    u8 *io_bitmap;              /* A (ports 0-0x7fff) then B, 4 KiB each (SDM Vol. 3C 26.6.4) */
    u64 host_stack_top;
    u16 vpid;
    bool launched;
    bool step_tf;               /* apic_step single-steps with RFLAGS.TF (no monitor trap flag) */
    bool step_guest_tf;         /* ... and the guest's own TF meanwhile */
    u32 step_exc_bitmap;        /* ... and the exception bitmap from before (every vector trapped meanwhile) */
    bool halted;                /* the guest is in its HLT, entered in the HLT activity state (vmx/halt.c) */
    u64 exits[VMX_EXIT_REASON_COUNT];
};

extern struct vmx_caps vmx_caps;

const char *vmx_instruction_error_name(u32 err);
const char *vmx_exit_reason_name(u32 reason);

bool vmx_enable(struct percpu *pc);
/* Blue pill: returns 0 in VMX non-root (the guest) or a nonzero error if VMLAUNCH failed. */
int vmx_start(struct percpu *pc);
/* Called by vmx_start (asm) with the state the guest resumes in. */
int vmx_setup_and_launch(struct percpu *pc, u64 guest_rsp, u64 guest_rip);
struct guest_start;
/* A loaded guest (guest.h) with a fresh register state; returns only if the launch failed. */
int vmx_start_guest(struct percpu *pc, const struct guest_start *gs);
/*
 * The C exit dispatcher, called by the asm exit stub with the saved GPRs (vmx/exit_fast.c: CPUID's
 * fast path there, every other exit vmx_exit_full(), vmx/exit.c).
 */
void vmx_exit_dispatch(struct guest_regs *regs);
void vmx_exit_full(struct percpu *pc, struct guest_regs *regs, u32 reason);
__noreturn void vmx_resume_failed(void);
/* VMREAD every supported VMCS component into pc->snapshot (vmx/snapshot.c). */
void vmx_snapshot(struct percpu *pc, u32 why);

#endif
