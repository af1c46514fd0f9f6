/* The AMD-V instance of the core's backend interface. */
#include <hv/backend.h>
#include <hv/console.h>
#include <hv/memmap.h>
#include <hv/mtrr.h>
#include <hv/pool.h>
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

static void *stage2_table_alloc(void *ctx)
{
    (void)ctx;
    return pool_alloc(1, PAGE_SIZE, "stage-2 table");
}

static bool svm_init(void)
{
    struct mtrr_state mtrrs;
    u32 a, b, c, d;
    cpuid(0x80000001, 0, &a, &b, &c, &d);
    mtrr_read(&mtrrs);
    svm_npt = (struct stage2){
        .ops = &npt_ops,
        .page_sizes = npt_page_sizes(d),     /* 1 GiB leaves only with CPUID 8000_0001h:EDX.Page1GB */
        .alloc_page = stage2_table_alloc,
    };
    if (stage2_build_identity(&svm_npt, &hv_memmap, &mtrrs))
        return false;
    printk("svm: NPT identity map of [0, 0x%lx), MTRRs %s\n", svm_npt.top, mtrr_enabled(&mtrrs) ? "enabled" : "disabled");
    stage2_print_summary(&svm_npt);
    int holes = stage2_unmap_holes(&svm_npt, &hv_memmap);
    if (holes < 0)
        return false;
    printk("svm: %d memory-map holes mapped on demand\n", holes);
    return true;
}

static int svm_launch(struct percpu *pc)
{
    return svm_start(pc);
}

static void svm_print_exit_counts(const struct percpu *pc)
{
    const struct svm_cpu *s = pc->vendor;
    char line[400];
    int n = snprintf(line, sizeof(line), "svm: CPU %u exits:", pc->index);
    for (u32 i = 0; i < SVM_EXIT_IDX_COUNT && n < (int)sizeof(line); i++) {
        if (!s->exits[i])
            continue;
        u64 code = i < 0x100 ? i : i == SVM_EXIT_IDX_NPF ? SVM_EXIT_NPF : SVM_EXIT_INVALID;
        n += snprintf(line + n, sizeof(line) - (size_t)n, " %s=%lu", svm_exit_name(code), s->exits[i]);
    }
    printk("%s\n", line);
}

const struct hv_backend svm_backend = {
    .name = "svm",
    .vendor = HV_VENDOR_SVM,
    .probe = svm_probe,
    .init = svm_init,
    .enable = svm_enable,
    .launch = svm_launch,
    .snapshot = svm_snapshot,
    .print_exit_counts = svm_print_exit_counts,
};
