#ifndef HV_SVM_HALT_H
#define HV_SVM_HALT_H

#include <hv/svm/svm.h>
#include <hv/svm/vmcb.h>

struct svm_exit;

/* svm/halt.c: the guest's HLT kept across the hypervisor's own exits (SVM saves no activity state). */
/* not halted: HLT intercepted, INTR for the stub */
void svm_halt_reset(struct percpu *pc, struct svm_cpu *s, struct vmcb *v);
void svm_halt_exit(struct svm_exit *x);                     /* the HLT intercept: run the HLT for real */
void svm_halt_after_exit(struct svm_exit *x);               /* a halted guest's exit, last thing before VMRUN */
/* INTR intercepted while the guest runs, with the gdb stub on (halt.c): the INTR exit lets the pending
 * interrupt through to the guest, the IRET exit of its handler intercepts INTR again. */
void svm_intr_let_through(struct vmcb *v);
void svm_intr_iret_exit(struct svm_exit *x);

/* The end of every exit: one flag tested inline, the call only while the guest runs its HLT. */
static inline void svm_halt_check(const struct percpu *pc, struct svm_exit *x)
{
    if (__builtin_expect(pc->guest_halted, 0))
        svm_halt_after_exit(x);
}

#endif
