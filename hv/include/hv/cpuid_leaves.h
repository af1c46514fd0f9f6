/*
 * CPUID as every back end presents it to the guest, before the vendor hides its own extension:
 * the hypervisor leaves 0x40000000-0x400000FF are answered here (signature, then the ABI version);
 * every other leaf is executed for real, with CPUID.1:ECX.hypervisor[31] set (reserved for this
 * use: SDM Vol. 2A CPUID, AMD APM Vol. 3 Appendix E.3.2). The bits that mirror control-register
 * state (CPUID.1:ECX.OSXSAVE[27] = CR4.OSXSAVE, CPUID.7.0:ECX.OSPKE[4] = CR4.PKE) are the guest's,
 * from guest_cr4: the CPU executing CPUID in the host would report the host's CR4. Neither
 * virtualization extension is offered (no nested virtualization), nor SMX or Processor Trace; leaf
 * 8000_000Ah is SVM's feature leaf where the CPU has SVM (APM Vol. 3 E.4.9) and reads as zeros then.
 */
#ifndef HV_CPUID_LEAVES_H
#define HV_CPUID_LEAVES_H

#include <hv/types.h>

struct cpuid_regs {
    u32 a, b, c, d;
};

/* By value: 16 bytes come back in RAX:RDX (SysV ABI), no stores through pointers on every exit. */
struct cpuid_regs hv_guest_cpuid(u32 leaf, u32 sub, u64 guest_cr4);

#endif
