#ifndef HV_VMX_HALT_H
#define HV_VMX_HALT_H

#include <hv/vmx/vcpu.h>
#include <hv/vmx/vmx.h>

/* vmx/halt.c: the guest's HLT kept across the hypervisor's own exits (Bochs 2.7 saves it as active). */
/* Why HLT exiting must stay off on this CPU (NULL: it may be on); c: the controls adjusted so far. */
const char *vmx_halt_unusable(const struct vmx_caps *c, u64 vmx_misc, u32 pin_allowed1);
void vmx_halt_reset(struct vmx_cpu *v);         /* a fresh VMCS: not halted */
void vmx_halt_exit(struct vmx_exit *x);         /* the HLT exit: past it, halted from the next entry on */
void vmx_halt_intr(struct vmx_exit *x);         /* external-interrupt exit (on only while halted) */
void vmx_halt_after_exit(struct vmx_exit *x);   /* a halted guest's exit, the last thing before VMRESUME */

/* The end of every exit: one flag tested inline, the call only while the guest is halted. */
static inline void vmx_halt_check(const struct vmx_cpu *v, struct vmx_exit *x)
{
    if (__builtin_expect(v->halted, 0))
        vmx_halt_after_exit(x);
}

#endif
