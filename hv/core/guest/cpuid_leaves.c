/* The guest's CPUID, shared by vmx/ and svm/ (see cpuid_leaves.h). */
#include <hv/abi.h>
#include <hv/cpuid_leaves.h>
#include <hv/x86.h>

#define CPUID_1_ECX_OSXSAVE (1u << 27)
#define CPUID_7_ECX_PKU     (1u << 3)
#define CPUID_7_ECX_OSPKE   (1u << 4)
#define CPUID_1_ECX_VMX     (1u << 5)
#define CPUID_1_ECX_SMX     (1u << 6)
#define CPUID_7_EBX_PT      (1u << 25)  /* Intel Processor Trace (SDM Vol. 2A CPUID leaf 07H) */
#define CPUID_80000001_ECX_SVM (1u << 2)

struct cpuid_regs hv_guest_cpuid_adjusted(u32 leaf, u32 sub, u64 guest_cr4)
{
    struct cpuid_regs r = { 0, 0, 0, 0 };
    if (leaf >= 0x40000000 && leaf <= 0x400000ff) {
        /* The hypervisor leaves: signature, then the ABI version. */
        static const char sig[12] = HV_CPUID_SIGNATURE;
        if (leaf == 0x40000000) {
            r.a = HV_CPUID_MAX_LEAF;
            memcpy(&r.b, sig, 4);
            memcpy(&r.c, sig + 4, 4);
            memcpy(&r.d, sig + 8, 4);
        } else if (leaf == 0x40000001) {
            r.a = HV_ABI_VERSION;
        }
        return r;
    }
    cpuid(leaf, sub, &r.a, &r.b, &r.c, &r.d);
    if (leaf == 1) {
        r.c |= 1u << 31;    /* hypervisor present */
        r.c = (r.c & ~(CPUID_1_ECX_OSXSAVE | CPUID_1_ECX_VMX | CPUID_1_ECX_SMX)) |
              (guest_cr4 & X86_CR4_OSXSAVE ? CPUID_1_ECX_OSXSAVE : 0);
    } else if (leaf == 7 && sub == 0) {
        r.b &= ~CPUID_7_EBX_PT;         /* its RTIT_* MSRs are #GP (msr_policy.c): PT is not offered */
        /* By the feature (PKU), not the host's OSPKE: the hypervisor never sets its own CR4.PKE, so
         * the host's OSPKE is 0 and a guest that set CR4.PKE would never see it (SDM Vol. 2A CPUID). */
        if (r.c & CPUID_7_ECX_PKU)
            r.c = (r.c & ~CPUID_7_ECX_OSPKE) | (guest_cr4 & X86_CR4_PKE ? CPUID_7_ECX_OSPKE : 0);
    } else if (leaf == 0x14) {
        r = (struct cpuid_regs){ 0, 0, 0, 0 };  /* PT's leaf, absent with the feature bit */
    } else if (leaf == 0x80000001) {
        r.c &= ~CPUID_80000001_ECX_SVM;
    } else if (leaf == 0x8000000a) {
        u32 ha, hb, hc, hd;
        cpuid(0x80000001, 0, &ha, &hb, &hc, &hd);
        if (hc & CPUID_80000001_ECX_SVM)
            r = (struct cpuid_regs){ 0, 0, 0, 0 };
    }
    return r;
}
