/*
 * Every CPU gets the BSP's MTRRs, as firmware leaves them: the APs the hypervisor starts itself must
 * not keep power-on MTRRs that differ (a guest OS checks they agree, and the stage-2 memory types come
 * from the BSP's). Programmed by the SDM's procedure (Vol. 3A 13.11.7 / 13.11.8): caches to no-fill
 * mode and flushed, MTRRs disabled, written, re-enabled, caches flushed again.
 */
#include <hv/mtrr.h>
#include <hv/x86.h>


void mtrr_write(const struct mtrr_state *st)
{
    if (!st->cap)
        return;             /* no MTRRs (CPUID.1:EDX.MTRR clear): nothing to copy */
    u64 cr0 = read_cr0();
    __asm__ volatile("mov %0, %%cr0; wbinvd" : : "r"((cr0 | X86_CR0_CD) & ~X86_CR0_NW) : "memory");
    wrmsr(MSR_MTRR_DEF_TYPE, 0);
    if (st->cap & MTRRCAP_FIX) {
        wrmsr(MSR_MTRR_FIX64K, st->fixed[0]);
        wrmsr(MSR_MTRR_FIX16K_80, st->fixed[1]);
        wrmsr(MSR_MTRR_FIX16K_A0, st->fixed[2]);
        for (u32 i = 0; i < 8; i++)
            wrmsr(MSR_MTRR_FIX4K(i), st->fixed[3 + i]);
    }
    for (u32 i = 0; i < st->var_count; i++) {
        wrmsr(MSR_MTRR_PHYSBASE(i), st->var[i].base);
        wrmsr(MSR_MTRR_PHYSMASK(i), st->var[i].mask);
    }
    wrmsr(MSR_MTRR_DEF_TYPE, st->def_type);
    __asm__ volatile("wbinvd; mov %0, %%cr0" : : "r"(cr0) : "memory");
}
