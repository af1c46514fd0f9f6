/*
 * The guest's HLT state across the hypervisor's own exits (SVM). VT-x keeps it in the VMCS (guest
 * activity state, SDM Vol. 3C 24.4.2: an exit taken in the HLT state saves HLT, and the entry halts
 * again); SVM saves none: an intercepted NMI that finds the guest halted completes its HLT, and the
 * guest runs on after it at the next VMRUN. Every kick (vcpu.h: an xAPIC step's hold, INIT to a running
 * CPU, a gdb stop) would then wake a halted guest with no event it can see, and a guest that halts
 * until its NMI comes (memtest86+'s barrier: `lock decl; je 0f; hlt`) runs on too early.
 *
 * So HLT is intercepted. At its exit the guest's HLT is run for real (the HLT intercept off, RIP left
 * on it), with INTR intercepted (APM Vol. 2 15.13.1) so that every genuine wake-up is an exit: an
 * interrupt (the INTR exit, after which the interrupt, still pending, is taken by the guest at VMRUN),
 * or an event the hypervisor injects (the guest's NMI). Any other exit that finds the HLT completed
 * puts the guest back on it, in an interrupt shadow so that the HLT executes before an interrupt
 * pending meanwhile is recognised: the guest wakes from the HLT, as on hardware, and returns after it.
 *
 * A HLT in an interrupt shadow (Linux's idle: STI; HLT, the guest's proof that no wake-up slips in
 * between) must run before the interrupt is taken: it is halt_atomic. VMRUN loads the shadow back
 * (APM Vol. 2 15.21.5), but QEMU 7.2's TCG does not: its INTR exit came on the HLT itself, the guest
 * took the interrupt there and, back from the handler, slept in the HLT with the IPI that should have
 * woken it consumed (Linux with 2 CPUs idled on until its next timer, seconds). So an INTR exit on a
 * halt_atomic HLT completes it first: RIP after the HLT, which is where the CPU that keeps the shadow
 * takes the interrupt too.
 *
 * With the resident gdb stub on (gdbstub=1), INTR is intercepted while the guest runs too: SVM has no
 * preemption timer, and a guest that computes with interrupts on and makes no exit of its own would
 * never let the stub look at its UART (Ctrl-C). At an INTR exit the interrupt stays pending, and the
 * guest (its IF set, no interrupt shadow: else no INTR exit) must take it at VMRUN: INTR is let
 * through, with IRET intercepted instead, an exit before the IRET executes (APM Vol. 2 15.9; RIP stays
 * on it). The handler's IRET then intercepts INTR again. Two exits per guest interrupt, only with the
 * stub. (A virtual-interrupt window, V_IRQ with VINTR intercepted, is what the APM offers for "the
 * guest can take interrupts again", but QEMU's TCG drops a pending V_IRQ when it delivers a physical
 * interrupt, and the window never closed.)
 */
#include <hv/gdbstub.h>
#include <hv/svm/halt.h>
#include <hv/svm/vcpu.h>

/* The guest runs (not halted): HLT intercepted, INTR only for the gdb stub, IRET not. */
static void intercepts_running(struct vmcb *v)
{
    u32 misc1 = v->control.intercept_misc1 & ~(SVM_INTERCEPT1_INTR | SVM_INTERCEPT1_IRET);
    v->control.intercept_misc1 = misc1 | SVM_INTERCEPT1_HLT | (gdbstub_port ? SVM_INTERCEPT1_INTR : 0);
}

static void halt_end(struct percpu *pc, struct svm_cpu *s, struct vmcb *v)
{
    pc->guest_halted = 0;
    s->halt_atomic = false;
    intercepts_running(v);
}

void svm_intr_let_through(struct vmcb *v)
{
    v->control.intercept_misc1 &= ~SVM_INTERCEPT1_INTR;
    if (gdbstub_port)
        v->control.intercept_misc1 |= SVM_INTERCEPT1_IRET;
}

void svm_intr_iret_exit(struct svm_exit *x)
{
    intercepts_running(x->vmcb);        /* RIP stays on the IRET: it executes at VMRUN */
}

void svm_halt_reset(struct percpu *pc, struct svm_cpu *s, struct vmcb *v)
{
    halt_end(pc, s, v);
}

void svm_halt_exit(struct svm_exit *x)
{
    struct vmcb *v = x->vmcb;
    u32 len = x->vcpu.ops->insn_len(&x->vcpu);
    /* in a shadow now, or the same HLT was before an exit that came before it ran (carried: see below) */
    x->s->halt_atomic = (v->control.interrupt_shadow & 1) || (x->s->halt_atomic && x->s->halt_rip == v->save.rip);
    x->vcpu.pc->guest_halted = 1;
    x->s->halt_rip = v->save.rip;
    x->s->halt_next = v->save.rip + (len ? len : 1);    /* 0: the bytes were unreadable (said); HLT is F4 */
    u32 misc1 = v->control.intercept_misc1 & ~(SVM_INTERCEPT1_HLT | SVM_INTERCEPT1_IRET);
    v->control.intercept_misc1 = misc1 | SVM_INTERCEPT1_INTR;
}

void svm_halt_after_exit(struct svm_exit *x)
{
    struct svm_cpu *s = x->s;
    struct vmcb *v = x->vmcb;
    if (x->code == SVM_EXIT_HLT)
        return;
    if (x->code == SVM_EXIT_INTR && s->halt_atomic && v->save.rip == s->halt_rip) {
        v->save.rip = s->halt_next;     /* the HLT ran, and the interrupt woke it */
        v->control.interrupt_shadow &= ~1ull;
    }
    /* Woken: by an interrupt, by an event injected now, or it left the HLT (it had not run yet). */
    bool woken = x->code == SVM_EXIT_INTR || (v->control.event_inj & SVM_EVT_VALID);
    if (woken || v->save.rip != s->halt_next) {
        /* Not run yet, nothing delivered: its next exit (HLT, at the same RIP) keeps it atomic. */
        bool carried = !woken && s->halt_atomic && v->save.rip == s->halt_rip;
        halt_end(x->vcpu.pc, s, v);
        s->halt_atomic = carried;
        if (x->code == SVM_EXIT_INTR)
            svm_intr_let_through(v);
        return;
    }
    v->save.rip = s->halt_rip;
    v->control.interrupt_shadow |= 1;
    s->halt_atomic = true;
}
