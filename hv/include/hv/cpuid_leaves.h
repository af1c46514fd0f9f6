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

/* The leaves whose answer depends on the guest's CR4 (the caller may pass 0 for any other). */
static inline bool cpuid_leaf_mirrors_cr4(u32 leaf)
{
    return leaf == 1 || leaf == 7;
}

/* The leaves the hypervisor answers or changes (cpuid_leaves.c); every other is the CPU's own,
 * executed inline by the exit (exit_fast.h). */
static inline bool cpuid_leaf_adjusted(u32 leaf)
{
    if (leaf < 32)
        return ((1u << 1) | (1u << 7) | (1u << 0x14)) >> leaf & 1;
    return leaf >= 0x40000000 && (leaf <= 0x400000ff || leaf == 0x80000001 || leaf == 0x8000000a);
}

/* The guest's answer for a leaf cpuid_leaf_adjusted() names. By value: RAX:RDX (SysV ABI). */
struct cpuid_regs hv_guest_cpuid_adjusted(u32 leaf, u32 sub, u64 guest_cr4);

#endif
