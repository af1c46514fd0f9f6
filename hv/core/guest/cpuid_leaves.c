/* The guest's CPUID, shared by vmx/ and svm/ (see cpuid_leaves.h). */
#include <hv/abi.h>
#include <hv/cpuid_leaves.h>
#include <hv/x86.h>

#define CPUID_1_ECX_OSXSAVE (1u << 27)
#define CPUID_7_ECX_PKU     (1u << 3)
#define CPUID_7_ECX_OSPKE   (1u << 4)

void hv_guest_cpuid(u32 leaf, u32 sub, u64 guest_cr4, u32 *a, u32 *b, u32 *c, u32 *d)
{
    if (leaf >= 0x40000000 && leaf <= 0x400000ff) {
        /* The hypervisor leaves: signature, then the ABI version. */
        static const char sig[12] = HV_CPUID_SIGNATURE;
        *a = *b = *c = *d = 0;
        if (leaf == 0x40000000) {
            *a = HV_CPUID_MAX_LEAF;
            memcpy(b, sig, 4);
            memcpy(c, sig + 4, 4);
            memcpy(d, sig + 8, 4);
        } else if (leaf == 0x40000001) {
            *a = HV_ABI_VERSION;
        }
        return;
    }
    cpuid(leaf, sub, a, b, c, d);
    if (leaf == 1) {
        *c |= 1u << 31;     /* hypervisor present */
        *c = (*c & ~CPUID_1_ECX_OSXSAVE) | (guest_cr4 & X86_CR4_OSXSAVE ? CPUID_1_ECX_OSXSAVE : 0);
    } else if (leaf == 7 && sub == 0 && (*c & CPUID_7_ECX_PKU)) {
        /* By the feature (PKU), not the host's OSPKE: the hypervisor never sets its own CR4.PKE, so
         * the host's OSPKE is 0 and a guest that set CR4.PKE would never see it (SDM Vol. 2A CPUID). */
        *c = (*c & ~CPUID_7_ECX_OSPKE) | (guest_cr4 & X86_CR4_PKE ? CPUID_7_ECX_OSPKE : 0);
    }
}
