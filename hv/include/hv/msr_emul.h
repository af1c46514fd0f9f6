/* The MSRs the policy table emulates (MSR_EMUL, core/guest/msr_emul.c). False: #GP(0) to the guest. */
#ifndef HV_MSR_EMUL_H
#define HV_MSR_EMUL_H

#include <hv/vcpu.h>

bool msr_emul_read(struct vcpu *v, u32 msr, u64 *value);
bool msr_emul_write(struct vcpu *v, u32 msr, u64 value);
/*
 * Flush this CPU's stage-2 translations if a CPU retyped the map for its guest MTRRs since (it set
 * every CPU's stage2_stale after the retype). Cleared before the flush: a retype that sets it again
 * meanwhile is flushed now or at the next exit, never lost. Inline: every exit asks, and the answer
 * is almost always no (issue 18).
 */
static inline void msr_emul_stage2_sync(struct vcpu *v)
{
    if (__builtin_expect(v->pc->stage2_stale, 0)) {
        __atomic_store_n(&v->pc->stage2_stale, 0, __ATOMIC_SEQ_CST);
        v->ops->stage2_flush(v);
    }
}

#endif
