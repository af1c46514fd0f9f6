/*
 * CPUID as every back end presents it to the guest, before the vendor hides its own extension:
 * the hypervisor leaves 0x40000000-0x400000FF are answered here (signature, then the ABI version);
 * every other leaf is executed for real, with CPUID.1:ECX.hypervisor[31] set (reserved for this
 * use: SDM Vol. 2A CPUID, AMD APM Vol. 3 Appendix E.3.2). The bits that mirror control-register
 * state (CPUID.1:ECX.OSXSAVE[27] = CR4.OSXSAVE, CPUID.7.0:ECX.OSPKE[4] = CR4.PKE) are the guest's,
 * from guest_cr4: the CPU executing CPUID in the host would report the host's CR4. The caller then
 * clears VMX or SVM.
 */
#ifndef HV_CPUID_LEAVES_H
#define HV_CPUID_LEAVES_H

#include <hv/types.h>

void hv_guest_cpuid(u32 leaf, u32 sub, u64 guest_cr4, u32 *a, u32 *b, u32 *c, u32 *d);

#endif
