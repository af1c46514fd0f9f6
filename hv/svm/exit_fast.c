/*
 * The VMRUN loop's C entry (svm_exit_dispatch) and CPUID's fast path (exit_fast.h, issue 18); every
 * other exit goes to svm_exit_full() (exit.c). The loop (launch.S) stores and loads only RCX, RDX, RBX,
 * RSI, RDI and R8-R11 around this call (RAX and RSP live in the VMCB): exit_frame.h says how the rest of
 * the frame is kept. Only the loop may call this file.
 */
#include <hv/breaks.h>
#include <hv/exit_fast.h>
#include <hv/exit_frame.h>
#include <hv/guest_mem.h>
#include <hv/svm/svm.h>
#include <hv/x86.h>

static void exit_full(struct percpu *pc, struct svm_cpu *s, struct guest_regs *regs)
{
    frame_complete(pc, (u64 *)regs);
    svm_exit_full(pc, s, regs);
    frame_reload((u64 *)regs);
    frame_done(pc);
}

static u64 svm_guest_cr4(const void *ctx)
{
    return ((const struct vmcb *)ctx)->save.cr4;
}

/*
 * CPUID's fast path (exit_fast.h), or the full one, which gives the same result, unless the exit needs
 * nothing but the instruction emulated and its length is known without a copy: from next_rip (NRIPS),
 * or 0F A2 in place through the cached translation of the code page (guest_mem.h, checked against the
 * guest's paging entries). A prefixed CPUID, an uncached page, an event the exit interrupted
 * (EXITINTINFO, APM 15.7.2), the guest's RFLAGS.TF or its HLT take the full path.
 */
static inline void cpuid_exit(struct percpu *pc, struct vmcb *v, struct guest_regs *regs)
{
    if (!exit_fast_quiet(pc) || (v->control.exitintinfo & SVM_EVT_VALID) ||
        (v->save.rflags & X86_RFLAGS_TF))
        goto full;
    u64 rip = v->save.rip, next = v->control.next_rip;
    /*
     * next_rip is nonzero only where the CPU saves it (NRIPS, APM Vol. 2 15.7.1: for an instruction
     * intercept such as CPUID). Without NRIPS the field is reserved: the CPU never writes it, and the
     * VMCB starts zeroed (pool_alloc, svm/enable.c) and hvtrace never writes it; QEMU's TCG leaves it 0.
     */
    if (!next) {
        /* No walk here: a page not cached takes the full path, whose length decode caches it. */
        struct guest_paging p = { v->save.cr0, v->save.cr3, v->save.cr4, v->save.efer };
        u64 linear = v->save.cs.base + v->save.rip;
        const u8 *b;
        if (!guest_code_cached(&p, linear, pc->index, &b) || (linear & (PAGE_SIZE - 1)) == PAGE_SIZE - 1 ||
            b[0] != 0x0f || b[1] != 0xa2)
            goto full;
        next = rip + 2;
    }
    /* the instruction skipped first: fewer values live while the record is filled */
    v->save.rip = next;                 /* past the instruction, which ends an STI shadow (15.21.5) */
    v->control.interrupt_shadow &= ~1ull;
    v->control.tlb_control = SVM_TLB_NOTHING;
    v->control.event_inj = 0;
    regs->rax = v->save.rax;
    /*
     * The record, its fields read once its slot is reserved (the reservation is a compiler barrier: they
     * are not all loaded before it). Its operands: leaf and sub-leaf (exit_record_gpr_operands).
     */
    struct hv_record *rec = trace_exit_slot(pc);
    trace_exit_fill(rec, v->save.cr3, SVM_EXIT_CPUID, v->control.exitinfo1, rip, HV_EXIT_CPUID, (u8)(next - rip),
                    (u32)regs->rax, (u32)regs->rcx);
    exit_fast_cpuid((u64 *)regs, svm_guest_cr4, v);
    v->save.rax = regs->rax;
    exit_fast_resume(pc, rec, HV_EXIT_CPUID, (u64 *)regs);
    return;
full:
    exit_full(pc, pc->vendor, regs);
}

/* v: this CPU's VMCB, from the loop (svm_cpu.vmcb: one load less on every exit). */
void svm_exit_dispatch(struct guest_regs *regs, struct vmcb *v)
{
    struct percpu *pc = this_cpu();
    pc->in_root = 1;
    if (v->control.exitcode == SVM_EXIT_CPUID)
        cpuid_exit(pc, v, regs);
    else
        exit_full(pc, pc->vendor, regs);
}
