/* The MSRs the policy table emulates (MSR_EMUL, core/guest/msr_emul.c). False: #GP(0) to the guest. */
#ifndef HV_MSR_EMUL_H
#define HV_MSR_EMUL_H

#include <hv/vcpu.h>

bool msr_emul_read(struct vcpu *v, u32 msr, u64 *value);
bool msr_emul_write(struct vcpu *v, u32 msr, u64 value);
/*
 * Flush this CPU's stage-2 translations if another CPU retyped the map for its guest MTRRs since.
 * Inline: every exit asks, and the answer is almost always no (issue 18).
 */
extern volatile u32 stage2_types_gen;
static inline void msr_emul_stage2_sync(struct vcpu *v)
{
    u32 gen = stage2_types_gen;
    if (v->pc->stage2_types_seen != gen) {
        v->pc->stage2_types_seen = gen;
        v->ops->stage2_flush(v);
    }
}

#endif
