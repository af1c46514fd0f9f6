/* The VT-x side of struct vcpu (vcpu.h): one exit in flight on this CPU. */
#ifndef HV_VMX_VCPU_H
#define HV_VMX_VCPU_H

#include <hv/vcpu.h>
#include <hv/vmx/vmx.h>

struct vmx_exit {
    struct vcpu vcpu;           /* first: a struct vcpu * is a struct vmx_exit * */
    struct vmx_cpu *v;
    u32 reason;
    u64 qual;
};

extern const struct vcpu_ops vmx_vcpu_ops;

/* INVEPT single-context (SDM Vol. 3C 29.4.3.1): drop cached translations derived from this EPTP. */
void vmx_invept_single(void);

#endif
