/* The AMD-V instance of the core's backend interface. */
#include <hv/backend.h>
#include <hv/stage2.h>
#include <hv/svm/npt.h>
#include <hv/svm/svm.h>
#include <hv/x86.h>

static bool svm_probe(void)
{
    u32 a, b, c, d;
    cpuid(0x80000000, 0, &a, &b, &c, &d);
    if (a < 0x80000001)
        return false;
    cpuid(0x80000001, 0, &a, &b, &c, &d);
    return c & CPUID_80000001_ECX_SVM;
}

/* The NPT identity map every CPU shares (the AMD counterpart of the seed's InitEptTable). */
struct stage2 svm_npt;

static bool svm_init(void)
{
    u32 a, b, c, d;
    cpuid(0x80000001, 0, &a, &b, &c, &d);
    /* 1 GiB leaves only with CPUID 8000_0001h:EDX.Page1GB */
    return stage2_setup_identity(&svm_npt, &npt_ops, npt_page_sizes(d));
}

static int svm_launch(struct percpu *pc)
{
    return svm_start(pc);
}

/*
 * CPUID's count is core's count of CPUID exits (the fast path, svm/exit.c, counts nothing more: issue 18);
 * only CPUID exits are of that kind. Every other code's is the full path's (svm/exit.c).
 */
static u64 svm_exit_count(const struct percpu *pc, u32 index)
{
    if (index == SVM_EXIT_CPUID)
        return pc->exit_kinds[HV_EXIT_CPUID];
    return ((const struct svm_cpu *)pc->vendor)->exits[index];
}

/* Counter index -> name: codes 0-0xff are their own index; NPF and VMEXIT_INVALID follow (svm.h). */
static const char *svm_exit_counter_name(u32 index)
{
    return svm_exit_name(index < 0x100 ? index : index == SVM_EXIT_IDX_NPF ? SVM_EXIT_NPF : SVM_EXIT_INVALID);
}

/* GIF = 0 holds INIT, NMI, SMI and interrupts pending (APM Vol. 2 15.17). */
static void svm_hold(void)
{
    __asm__ volatile("clgi" ::: "memory");
}

/*
 * GIF = 1 for a parked CPU's HLT (park.c): its wake-up IPI, an interrupt, must come in. No real INIT
 * comes meanwhile: the guest's INITs are emulated, and the hypervisor sends none after boot.
 */
static void svm_release(void)
{
    __asm__ volatile("stgi" ::: "memory");
}

const struct hv_backend svm_backend = {
    .name = "svm",
    .vendor = HV_VENDOR_SVM,
    .probe = svm_probe,
    .init = svm_init,
    .enable = svm_enable,
    .launch = svm_launch,
    .start_guest = svm_start_guest,
    .hold = svm_hold,
    .release = svm_release,
    .stage2 = &svm_npt,
    .snapshot = svm_snapshot,
    .exit_counters = SVM_EXIT_IDX_COUNT,
    .exit_count = svm_exit_count,
    .exit_counter_name = svm_exit_counter_name,
};
