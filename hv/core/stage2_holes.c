/*
 * Holes in the memory map (addresses no range describes: MMIO windows, the legacy VGA hole, the PCI
 * hole) are mapped on demand. At build they are made not-present; the first guest access raises a
 * stage-2 fault (EPT violation / #NPF), and the back end calls stage2_map_hole() to identity-map that
 * 4 KiB page (UC, as the builder typed it) and resumes the guest, which retries the access. So every
 * device window the guest really uses shows up once in the trace, and nothing is mapped blindly.
 */
#include <hv/console.h>
#include <hv/stage2.h>

static bool in_hole(const struct memmap *m, u64 gpa)
{
    for (u32 i = 0; i < m->count; i++)
        if (gpa >= m->range[i].base && gpa - m->range[i].base < m->range[i].length)
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

bool stage2_map_hole(struct stage2 *s, const struct memmap *m, u64 gpa)
{
    if (gpa >= s->top || !in_hole(m, gpa))
        return false;
    return stage2_protect(s, ALIGN_DOWN(gpa, PAGE_SIZE), PAGE_SIZE, STAGE2_RWX) == 0;
}
