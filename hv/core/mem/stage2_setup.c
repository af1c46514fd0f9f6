/*
 * The hypervisor's one stage-2 identity map (the seed's InitEptTable / Ept11mapping, docs/walkthrough.md step 3), built the same
 * way for both back ends: only the entry encoding (ops) and the supported page sizes differ.
 */
#include <hv/console.h>
#include <hv/discovery.h>
#include <hv/memmap.h>
#include <hv/mtrr.h>
#include <hv/pool.h>
#include <hv/stage2.h>

static void *stage2_table_alloc(void *ctx)
{
    (void)ctx;
    return pool_alloc(1, PAGE_SIZE, "stage-2 table");
}

bool stage2_setup_identity(struct stage2 *s, const struct stage2_ops *ops, u32 page_sizes)
{
    struct mtrr_state mtrrs;
    mtrr_read(&mtrrs);
    *s = (struct stage2){ .ops = ops, .page_sizes = page_sizes, .alloc_page = stage2_table_alloc };
    if (stage2_build_identity(s, &hv_memmap, &mtrrs))
        return false;
    printk("%s: identity map of [0, 0x%lx), MTRRs %s\n", ops->name, s->top,
           mtrr_enabled(&mtrrs) ? "enabled" : "disabled");
    stage2_print_summary(s);
    int holes = stage2_unmap_holes(s, &hv_memmap);
    if (holes < 0)
        return false;
    printk("%s: %d memory-map holes mapped on demand\n", ops->name, holes);
    hv_trace.stage2_root = (u64)s->root;
    return true;
}
