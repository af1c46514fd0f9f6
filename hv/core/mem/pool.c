/*
 * Physical page pool. Free ranges = usable RAM from the memory map, from 1 MiB (the low megabyte
 * holds BIOS data, the AP trampoline and real-mode guests) up to 4 GiB (what the boot identity map
 * covers), minus every claimed range. Allocation takes pages from the top of a range downwards, so
 * low memory stays free for guests; nothing is ever returned, which keeps the pool lock-trivial.
 */
#include <hv/abi.h>
#include <hv/console.h>
#include <hv/discovery.h>
#include <hv/memmap.h>
#include <hv/panic.h>
#include <hv/pool.h>
#include <hv/spinlock.h>

#define POOL_LOW    MiB(1)
#define POOL_HIGH   GiB(4)
#define MAX_CLAIMS  32
#define MAX_FREE    (MEMMAP_MAX + MAX_CLAIMS)

struct free_range {
    u64 base;       /* lowest page */
    u64 next_end;   /* allocation goes below this */
    u64 end;        /* original end: [next_end, end) is handed out */
};

static struct hv_claim claims[MAX_CLAIMS + MAX_FREE];
static u32 claim_count;
static struct free_range free_ranges[MAX_FREE];
static u32 free_count;
static spinlock_t pool_lock;
static bool pool_ready;
static bool pool_sealed;

void pool_claim(u64 base, u64 length, const char *what)
{
    if (pool_ready)
        hv_fail(HV_STATUS_FAIL, "pool", "pool_claim(%s) after pool_init", what);
    if (claim_count == MAX_CLAIMS)
        hv_fail(HV_STATUS_FAIL, "pool", "more than %u boot claims (at %s)", MAX_CLAIMS, what);
    claims[claim_count++] = (struct hv_claim){ ALIGN_DOWN(base, PAGE_SIZE),
                                               ALIGN_UP(base + length, PAGE_SIZE) - ALIGN_DOWN(base, PAGE_SIZE), what };
}

/* Add [base, end) minus every claim, splitting around the claims that intersect it. */
static void add_free(u64 base, u64 end, u32 first_claim)
{
    for (u32 i = first_claim; i < claim_count && base < end; i++) {
        u64 cb = claims[i].base, ce = claims[i].base + claims[i].length;
        if (ce <= base || cb >= end)
            continue;
        if (cb > base)
            add_free(base, cb, i + 1);
        base = ce;
    }
    if (base >= end)
        return;
    if (free_count == MAX_FREE)
        hv_fail(HV_STATUS_FAIL, "pool", "page pool: too many free ranges");
    free_ranges[free_count++] = (struct free_range){ base, end, end };
}

void pool_init(void)
{
    for (u32 i = 0; i < hv_memmap.count; i++) {
        const struct mem_range *r = &hv_memmap.range[i];
        if (r->type != MEM_USABLE)
            continue;
        u64 base = ALIGN_UP(r->base, PAGE_SIZE), end = ALIGN_DOWN(r->base + r->length, PAGE_SIZE);
        if (base < POOL_LOW)
            base = POOL_LOW;
        if (end > POOL_HIGH)
            end = POOL_HIGH;
        if (base < end)
            add_free(base, end, 0);
    }
    pool_ready = true;
    printk("page pool: %lu pages (%lu KiB) in %u ranges; claimed:", pool_free_pages(), pool_free_pages() * 4,
           free_count);
    for (u32 i = 0; i < claim_count; i++)
        printk(" %s [0x%lx-0x%lx)", claims[i].what, claims[i].base, claims[i].base + claims[i].length);
    printk("\n");
}

void *pool_alloc(u64 pages, u64 align, const char *what)
{
    if (align < PAGE_SIZE || (align & (align - 1)))
        hv_fail(HV_STATUS_FAIL, "pool", "pool_alloc(%s): bad alignment 0x%lx", what, align);
    u64 bytes = pages * PAGE_SIZE;
    spin_lock(&pool_lock);
    /* Highest range first: keeps allocations away from low memory. */
    for (u32 i = free_count; i-- > 0;) {
        struct free_range *f = &free_ranges[i];
        if (f->next_end - f->base < bytes)
            continue;
        u64 addr = ALIGN_DOWN(f->next_end - bytes, align);
        if (addr < f->base)
            continue;
        f->next_end = addr;
        spin_unlock(&pool_lock);
        memset((void *)addr, 0, bytes);
        return (void *)addr;
    }
    spin_unlock(&pool_lock);
    hv_fail(HV_STATUS_POOL_EXHAUSTED, "pool_exhausted", "page pool exhausted: %s needs %lu pages, %lu left", what,
            pages, pool_free_pages());
}

void *pool_alloc_immutable(u64 pages, const char *what)
{
    void *p = pool_alloc(pages, PAGE_SIZE, what);
    discovery_add_immutable(p, pages * PAGE_SIZE);
    return p;
}

u64 pool_free_pages(void)
{
    u64 n = 0;
    for (u32 i = 0; i < free_count; i++)
        n += (free_ranges[i].next_end - free_ranges[i].base) / PAGE_SIZE;
    return n;
}

void pool_seal(u64 spare_pages)
{
    spin_lock(&pool_lock);
    u64 left = spare_pages * PAGE_SIZE;
    for (u32 i = free_count; i-- > 0;) {
        struct free_range *f = &free_ranges[i];
        u64 keep = f->next_end - f->base < left ? f->next_end - f->base : left;
        f->base = f->next_end - keep;
        left -= keep;
    }
    pool_sealed = true;
    spin_unlock(&pool_lock);
    printk("page pool: sealed with %lu spare pages\n", pool_free_pages());
}

u32 pool_claims(const struct hv_claim **out)
{
    /* Boot claims, then one entry per range the pool has handed out from (and, sealed, keeps for later). */
    u32 n = claim_count;
    for (u32 i = 0; i < free_count; i++) {
        u64 low = pool_sealed ? free_ranges[i].base : free_ranges[i].next_end;
        if (low < free_ranges[i].end)
            claims[n++] = (struct hv_claim){ low, free_ranges[i].end - low, "page pool" };
    }
    *out = claims;
    return n;
}
