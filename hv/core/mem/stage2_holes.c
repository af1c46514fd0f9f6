/*
 * Holes in the memory map (addresses no range describes: MMIO windows, the legacy VGA hole, the PCI
 * hole) and guest-physical addresses above RAM (64-bit PCI BARs) are mapped on demand. At build the
 * holes are made not-present; the first guest access raises a stage-2 fault (EPT violation / #NPF),
 * and the back end calls stage2_map_hole() to identity-map the block around it (UC, as the builder
 * typed it) and resumes the guest, which retries the access. So every device window the guest really
 * uses shows up once in the trace, and nothing is mapped blindly.
 *
 * The whole not-present leaf is mapped when it lies in the hole: a 2 MiB block costs no new table. A
 * 1 GiB hole leaf is first split into 2 MiB ones (one table), so that accesses in different 2 MiB
 * windows still show up once each. New tables (those splits, and the tables above RAM) come from a
 * fixed budget, so a guest touching many distinct addresses cannot exhaust the hypervisor's pool:
 * once it is spent, a 1 GiB hole is mapped whole. One lock serializes the updates of every CPU.
 */
#include <hv/console.h>
#include <hv/spinlock.h>
#include <hv/stage2.h>

/* Table pages demand mapping may take from the sealed pool, at most. */
#define HOLE_TABLES 32

static spinlock_t holes_lock;
static u32 tables_left = HOLE_TABLES;

/* Does no memory-map range intersect [base, base + size)? */
static bool in_hole(const struct memmap *m, u64 base, u64 size)
{
    for (u32 i = 0; i < m->count; i++)
        if (base < m->range[i].base + m->range[i].length && m->range[i].base < base + size)
            return false;
    return true;
}

int stage2_unmap_holes(struct stage2 *s, const struct memmap *m)
{
    u64 prev_end = 0;
    int holes = 0;
    for (u32 i = 0; i <= m->count; i++) {
        u64 base = i < m->count ? m->range[i].base : s->top;
        u64 start = ALIGN_UP(prev_end, PAGE_SIZE), end = ALIGN_DOWN(base < s->top ? base : s->top, PAGE_SIZE);
        if (start < end) {
            if (stage2_protect(s, start, end - start, 0))
                return -1;
            holes++;
        }
        if (i < m->count && m->range[i].base + m->range[i].length > prev_end)
            prev_end = m->range[i].base + m->range[i].length;
    }
    return holes;
}

static bool map_locked(struct stage2 *s, const struct memmap *m, u64 gpa)
{
    if (gpa >= s->top)
        return in_hole(m, gpa, 1) && stage2_map_above(s, gpa, &tables_left) == 0;
    struct stage2_walk w;
    if (!in_hole(m, gpa, 1) || stage2_walk(s, gpa, &w))
        return false;
    if (w.perms)
        return true;                    /* another CPU mapped it meanwhile: the guest retries */
    u64 block = ALIGN_DOWN(gpa, w.page_size);
    if (w.level == 3 && tables_left && in_hole(m, block, w.page_size) && stage2_split(s, gpa, 2) == 0) {
        tables_left--;
        return map_locked(s, m, gpa);
    }
    if (in_hole(m, block, w.page_size))
        return stage2_protect(s, block, w.page_size, STAGE2_RWX) == 0;
    return stage2_protect(s, ALIGN_DOWN(gpa, PAGE_SIZE), PAGE_SIZE, STAGE2_RWX) == 0;
}

bool stage2_map_hole(struct stage2 *s, const struct memmap *m, u64 gpa)
{
    spin_lock(&holes_lock);
    bool ok = map_locked(s, m, gpa);
    spin_unlock(&holes_lock);
    return ok;
}
