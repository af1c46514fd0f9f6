/*
 * A store to the trapped xAPIC page by an instruction the MMIO decoder does not know: the guest's
 * APIC page is redirected in the stage-2 map to a scratch copy of the registers, the CPU executes
 * that one instruction (single-stepped: VT-x monitor trap flag, SDM Vol. 3C 26.5.2; SVM RFLAGS.TF
 * with the #DB intercept, APM Vol. 2 15.12), and what it changed in the copy is replayed as APIC
 * writes (apic_emul_mmio_write). Then the page is trapped again. One CPU at a time. An instruction
 * fetched from the page itself (code in the xAPIC page) is executed the same way: the copy holds the
 * bytes the registers read as, and the page itself never becomes writable or executable.
 */
#ifndef HV_APIC_STEP_H
#define HV_APIC_STEP_H

#include <hv/vcpu.h>

/* Start: redirect the page, arm the vendor's single step. False if it cannot (the caller decides). */
bool apic_step_begin(struct vcpu *v);
/* This CPU has a step in flight (the next exit ends it). */
bool apic_step_active(const struct percpu *pc);
/* End at the first exit after the step: replay the writes, trap the page again, disarm. */
void apic_step_end(struct vcpu *v);

#endif
