/* The MSRs the policy table emulates (MSR_EMUL, core/guest/msr_emul.c). False: #GP(0) to the guest. */
#ifndef HV_MSR_EMUL_H
#define HV_MSR_EMUL_H

#include <hv/vcpu.h>

bool msr_emul_read(struct vcpu *v, u32 msr, u64 *value);
bool msr_emul_write(struct vcpu *v, u32 msr, u64 value);
/* Flush this CPU's stage-2 translations if another CPU retyped the map for its guest MTRRs since. */
void msr_emul_stage2_sync(struct vcpu *v);

#endif
