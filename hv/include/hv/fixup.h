/*
 * Instructions that may fault by design (RDMSR of an unknown MSR, XSETBV with a bad value): the
 * caller arms this CPU's fixup slot for its context (guest or host) with the address after the
 * instruction; the exception entry resumes there and records the vector instead of stopping the run.
 * This is how the hypervisor executes a guest's MSR access for real and reflects the #GP it raised.
 */
#ifndef HV_FIXUP_H
#define HV_FIXUP_H

#include <hv/percpu.h>

static inline struct fixup *fixup_slot(void)
{
    struct percpu *pc = this_cpu();
    struct fixup *fx = &pc->fixup[pc->in_root ? 1 : 0];
    fx->fault = 0;
    fx->error = 0;
    fx->rsp = 0;
    return fx;
}

#define ARM_FIXUP "leaq 1f(%%rip), %%r11\n\tmovq %%r11, %[fx_rip]\n\t"
#define DISARM_FIXUP "\n1:\n\tmovq $0, %[fx_rip]"

/* Each returns 0 on success or the vector + 1 of the exception the instruction raised. */
static inline u64 safe_rdmsr(u32 msr, u64 *value)
{
    struct fixup *fx = fixup_slot();
    u32 lo = 0, hi = 0;
    __asm__ volatile(ARM_FIXUP "rdmsr" DISARM_FIXUP
                     : "+a"(lo), "+d"(hi), [fx_rip] "+m"(fx->rip) : "c"(msr) : "r11", "memory");
    *value = ((u64)hi << 32) | lo;
    return fx->fault;
}

static inline u64 safe_wrmsr(u32 msr, u64 value)
{
    struct fixup *fx = fixup_slot();
    __asm__ volatile(ARM_FIXUP "wrmsr" DISARM_FIXUP
                     : [fx_rip] "+m"(fx->rip) : "c"(msr), "a"((u32)value), "d"((u32)(value >> 32)) : "r11", "memory");
    return fx->fault;
}

static inline u64 safe_xsetbv(u32 index, u64 value)
{
    struct fixup *fx = fixup_slot();
    __asm__ volatile(ARM_FIXUP "xsetbv" DISARM_FIXUP
                     : [fx_rip] "+m"(fx->rip) : "c"(index), "a"((u32)value), "d"((u32)(value >> 32)) : "r11", "memory");
    return fx->fault;
}

#endif
