/*
 * The exit's tail that every path shares, and the pieces of the back ends' fast paths (issue 18).
 *
 * A fast path handles one exit kind (CPUID) start to end in one function, without the generic
 * dispatcher's frame (struct vcpu, handler tables, operations through pointers). It is taken only
 * when the exit needs nothing but its instruction emulated: exit_fast_quiet() here, and what the back
 * end knows (no event whose delivery the exit interrupted, the guest not single-stepping with
 * RFLAGS.TF, not halted, the instruction's length known without a copy). Anything else goes the
 * full way, which gives the same result. Both paths end in vcpu_exit_resume(): the record published,
 * exits counted, breaks checked, the gdb stub's UART polled, the run's end, a latched INIT.
 */
#ifndef HV_EXIT_FAST_H
#define HV_EXIT_FAST_H

#include <hv/apic_emul.h>
#include <hv/apic_step.h>
#include <hv/cpuid_leaves.h>
#include <hv/gdbstub.h>
#include <hv/msr_emul.h>
#include <hv/percpu.h>
#include <hv/trace.h>
#include <hv/x86.h>

/* The run ends (percpu.end_reason, set by a handler): out of line, it never returns. */
__noreturn void vcpu_exit_end(struct percpu *pc);
/* An INIT latched for this CPU is taken (apic_emul.h): wait-for-SIPI, then a restart; no return. */
__noreturn void vcpu_take_init(struct percpu *pc);

/*
 * After the exit's state is final ('kind' is rec->kind, a constant on a fast path): the record traced,
 * the run ended if a handler asked for it (the guest's last exit is in the trace first), an INIT
 * taken, and the CPU marked as back to the guest. 'fast' (a constant): a fast path's handler never
 * ends the run, and it runs only when exit_fast_quiet() found no gdb-stub debug register to load, so
 * there are none to give back either. 'armed': break_armed(), read once (trace_exit_as).
 */
static inline __attribute__((always_inline)) void vcpu_exit_resume(struct percpu *pc, struct hv_record *rec, u8 kind,
                                                                   bool fast, bool armed)
{
    rec->tsc_resume = __builtin_ia32_rdtsc();
    trace_exit_as(pc, rec, kind, fast, armed);
    gdbstub_exit_poll(pc);              /* Ctrl-C or a new gdb on the stub's UART (gdbstub=1 only) */
    if (!fast && pc->end_reason)
        vcpu_exit_end(pc);
    /*
     * Not while this CPU single-steps an xAPIC access (apic_step.h): the page is redirected to the copy
     * for every CPU until the step ends (the next exit), and another CPU's SIPI would land in the copy.
     * The INIT stays latched and is taken at that exit.
     */
    if (__builtin_expect(x86_nonzero32(&apic_emul_init_latched), 0) && !apic_step_active(pc) &&
        apic_emul_take_init_latched(pc))
        vcpu_take_init(pc);
    apic_step_hold_wait(pc);            /* clears in_root */
    if (!fast)
        gdbstub_dr_exit_end(pc);        /* the guest's debug registers back */
}

/*
 * Nothing the full path does at an exit's start or end is pending on this CPU (percpu.exit_slow, one
 * load): no hardware breakpoint of the gdb stub to load, no NMI held for the guest, no stage-2 retyping
 * to flush, no xAPIC access being single-stepped (its exits and its cut are the full path's), no frame
 * stream (trace_e9=1, a debugging mode), no guest HLT kept across exits (SVM's, svm/halt.c).
 */
static inline bool exit_fast_quiet(const struct percpu *pc)
{
    return !x86_nonzero64(&pc->exit_slow);
}

/*
 * CPUID's vendor-neutral half, for both paths: the guest's answer (cpuid_leaves.h) in the GPR frame.
 * guest_cr4(ctx) is asked only where cpuid_leaf_mirrors_cr4() (VT-x reads it from three fields). The
 * record's operands are the leaf and sub-leaf (exit_record_gpr_operands()), taken before.
 * The leaves the hypervisor adjusts go out of line, reading the frame again: inline, their call's
 * arguments would be set up on every CPUID exit.
 */
static __attribute__((noinline)) void exit_fast_cpuid_adjusted(u64 *gpr, u64 (*guest_cr4)(const void *ctx),
                                                               const void *ctx)
{
    u32 leaf = (u32)gpr[0], sub = (u32)gpr[1];
    struct cpuid_regs r = hv_guest_cpuid_adjusted(leaf, sub, cpuid_leaf_mirrors_cr4(leaf) ? guest_cr4(ctx) : 0);
    gpr[0] = r.a;
    gpr[3] = r.b;
    gpr[1] = r.c;
    gpr[2] = r.d;
}
static inline void exit_fast_cpuid(u64 *gpr, u64 (*guest_cr4)(const void *ctx), const void *ctx)
{
    u32 leaf = (u32)gpr[0], sub = (u32)gpr[1];
    if (cpuid_leaf_adjusted(leaf)) {
        exit_fast_cpuid_adjusted(gpr, guest_cr4, ctx);
        return;
    }
    /* CPUID clears bits 63:32 of RAX, RBX, RCX and RDX (SDM Vol. 2A CPUID): 64-bit outputs, no extension. */
    u64 a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(leaf), "c"(sub));
    gpr[0] = a;
    gpr[3] = b;
    gpr[1] = c;
    gpr[2] = d;
}

#endif
