/*
 * The exit's partial GPR frame (issue 18), for a back end's exit_fast.c: the C its exit stub calls, and
 * nothing else does (vmx/exit_fast.c, svm/exit_fast.c). Such a file is compiled never to use RBP and
 * R12-R15 (-ffixed-*, hv/Makefile), and everything it calls preserves them (SysV ABI), so they hold the
 * guest's values from the exit to the next entry; its stub saves and restores only the other registers.
 * RBX the file may clobber (-fcall-used-rbx): the stub restores it from the frame.
 *
 * Whatever reads the frame whole gets it completed first (frame_complete): the full dispatcher, which
 * may also change those registers (frame_reload after it), and an armed exit break, whose conditions may
 * name them. pc->exit_regs points to the frame only while it is complete and is NULL otherwise (an exit
 * starts with it NULL; an INIT taken, vcpu_take_init, clears it too): a snapshot taken meanwhile (a
 * fatal error) has no GPRs rather than stale ones.
 */
#ifndef HV_EXIT_FRAME_H
#define HV_EXIT_FRAME_H

#include <hv/breaks.h>
#include <hv/exit_fast.h>
#include <hv/percpu.h>

/*
 * The frame is a struct guest_regs (RAX RCX RDX RBX RSP RBP RSI RDI R8-R15, 8 bytes each; both back
 * ends'): RSP is slot 4, RBP 5, R12-R15 12-15. One asm with the frame's address in a register (as
 * "m" operands of a pointer, GCC computes and keeps each slot's address first).
 */
static inline void frame_complete(struct percpu *pc, u64 *gpr)
{
    __asm__ volatile("movq %%rbp, 40(%0)\n\tmovq %%r12, 96(%0)\n\tmovq %%r13, 104(%0)\n\t"
                     "movq %%r14, 112(%0)\n\tmovq %%r15, 120(%0)" : : "r"(gpr) : "memory");
    gpr[4] = 0;                         /* the guest's RSP is in the VMCS / VMCB */
    pc->exit_regs = gpr;
}

/* Those registers from the frame again, as the full path left them (an emulated instruction may write them). */
static inline void frame_reload(const u64 *gpr)
{
    __asm__ volatile("movq 40(%0), %%rbp\n\tmovq 96(%0), %%r12\n\tmovq 104(%0), %%r13\n\t"
                     "movq 112(%0), %%r14\n\tmovq 120(%0), %%r15" : : "r"(gpr) : "memory");
}

/* The frame no longer complete: the stub restores only its own registers from it. */
static inline void frame_done(struct percpu *pc)
{
    pc->exit_regs = NULL;
}

/*
 * A fast path's end (exit_fast.h's vcpu_exit_resume). Breaks armed and watching this kind (or a new
 * table): the frame completed for them (conditions may name any GPR), and evaluated for the same
 * reading of 'armed'. Armed but none watching the kind: they surely miss (break_watches), nothing more
 * to do.
 */
static inline __attribute__((always_inline)) void exit_fast_resume(struct percpu *pc, struct hv_record *rec, u8 kind,
                                                                   u64 *gpr)
{
    if (__builtin_expect(break_armed(), 0) && break_watches(pc, kind)) {
        frame_complete(pc, gpr);
        vcpu_exit_resume(pc, rec, kind, true, true);
        frame_done(pc);
        return;
    }
    vcpu_exit_resume(pc, rec, kind, true, false);
}

#endif
