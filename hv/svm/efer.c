/*
 * The EFER bits an AMD CPU names in CPUID (APM Vol. 2 3.1.7 "Extended Feature Enable Register";
 * APM Vol. 3 Appendix E): pure logic, so the host-side native test checks it.
 */
#include <hv/svm/efer.h>

u64 svm_efer_cpuid_bits(u32 e1_ecx, u32 e1_edx, u32 e8_ebx, u32 e21_eax)
{
    u64 m = 0;
    if (e1_edx & (1u << 11))
        m |= EFER_BIT_SCE;                  /* SYSCALL/SYSRET */
    if (e1_edx & (1u << 29))
        m |= EFER_BIT_LME | EFER_BIT_LMA;   /* long mode */
    if (e1_edx & (1u << 20))
        m |= EFER_BIT_NXE;                  /* no-execute */
    if (e1_edx & (1u << 25))
        m |= EFER_BIT_FFXSR;                /* fast FXSAVE/FXRSTOR */
    if (e1_ecx & (1u << 17))
        m |= EFER_BIT_TCE;                  /* translation cache extension */
    if ((m & EFER_BIT_LME) && !(e8_ebx & (1u << 20)))
        m |= EFER_BIT_LMSLE;                /* long-mode segment limits, unless EferLmsleUnsupported */
    if (e8_ebx & (1u << 8))
        m |= EFER_BIT_MCOMMIT;
    if (e8_ebx & (1u << 9))
        m |= EFER_BIT_INTWB;                /* interruptible WBINVD/WBNOINVD */
    if (e21_eax & (1u << 7))
        m |= EFER_BIT_UAIE;                 /* upper address ignore */
    if (e21_eax & (1u << 8))
        m |= EFER_BIT_AUTOIBRS;             /* automatic IBRS */
    /* SVME (bit 12) is never named: SVM is hidden from the guest, so for it the bit is reserved. */
    return m;
}
