/*
 * The exit stub's C entry (vmx_exit_dispatch) and CPUID's fast path (exit_fast.h, issue 18); every
 * other exit goes to vmx_exit_full() (exit.c). The stub (launch.S) saves only RAX, RCX, RDX, RBX, RSI,
 * RDI and R8-R11 into the struct guest_regs frame, and restores only those: exit_frame.h says how the
 * rest of the frame is kept. Only the stub may call this file.
 */
#include <hv/breaks.h>
#include <hv/exit_fast.h>
#include <hv/exit_frame.h>
#include <hv/vmx/vmcs.h>
#include <hv/vmx/vmx.h>
#include <hv/x86.h>

static void exit_full(struct percpu *pc, struct guest_regs *regs, u32 reason)
{
    frame_complete(pc, (u64 *)regs);
    vmx_exit_full(pc, regs, reason);
    frame_reload((u64 *)regs);
    frame_done(pc);
}

static u64 guest_cr4(const void *ctx)
{
    (void)ctx;
    return vmx_guest_cr4();
}

/*
 * CPUID's fast path, unless the exit needs more than the instruction emulated: the guest not
 * single-stepping (RFLAGS.TF: the skip owes it a single-step trap). The CPU gives the length (VM-exit
 * instruction length, SDM Vol. 3C 28.2.5). Not looked at, because a CPUID exit cannot have them: an
 * event whose delivery the exit interrupted (the IDT-vectoring information is valid only for exits
 * during event delivery, 28.2.4, and an instruction's exit is not one), and the HLT activity state
 * (the guest executed an instruction: it was active, and vmx/halt.c ends its halted state at every
 * exit that wakes it).
 */
static inline void cpuid_exit(struct percpu *pc, struct guest_regs *regs)
{
    if (!exit_fast_quiet(pc) || (vmread_current(GUEST_RFLAGS) & X86_RFLAGS_TF)) {
        exit_full(pc, regs, EXIT_REASON_CPUID);
        return;
    }
    u64 len = vmread_current(VM_EXIT_INSTRUCTION_LEN);
    u64 rip = vmread_current(GUEST_RIP);
    /* the instruction skipped first: fewer values live while the record is filled */
    vmwrite_current(GUEST_RIP, rip + len);
    u64 blocking = vmread_current(GUEST_INTERRUPTIBILITY_INFO);
    if (blocking & 3)                   /* STI / MOV-SS blocking ends with the instruction (26.4.2) */
        vmwrite_current(GUEST_INTERRUPTIBILITY_INFO, blocking & ~3ull);
    /*
     * The record's operands: leaf and sub-leaf (exit_record_gpr_operands), loaded here and again for
     * CPUID (no register holds them across the fill). CPUID's exit qualification is cleared (28.2.1:
     * saved only for the exits it lists): 0, not read.
     */
    struct hv_record *rec = trace_exit_slot(pc);
    trace_exit_fill(rec, vmread_current(GUEST_CR3), EXIT_REASON_CPUID, 0, rip, HV_EXIT_CPUID, (u8)len,
                    (u32)regs->rax, (u32)regs->rcx);
    exit_fast_cpuid((u64 *)regs, guest_cr4, NULL);
    exit_fast_resume(pc, rec, HV_EXIT_CPUID, (u64 *)regs);
}

void vmx_exit_dispatch(struct guest_regs *regs)
{
    struct percpu *pc = this_cpu();
    pc->in_root = 1;
    u32 reason = (u32)vmread_current(VM_EXIT_REASON);
    if (reason == EXIT_REASON_CPUID)    /* the basic reason, no flag (28.2.1) */
        cpuid_exit(pc, regs);
    else
        exit_full(pc, regs, reason);
}
