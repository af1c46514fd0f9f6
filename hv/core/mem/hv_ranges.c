/* The hypervisor's memory as merged ranges: see hv_ranges.h. */
#include <hv/hv_ranges.h>

static bool is_hv_claim(const struct hv_claim *c)
{
    /* multiboot data and modules belong to the guest once it is loaded */
    return c->length && (!strncmp(c->what, "image", 6) || !strncmp(c->what, "page pool", 10));
}

/* Is claim i after claim j in (base, index) order? */
static bool after(const struct hv_claim *c, u32 i, u32 j)
{
    return c[i].base > c[j].base || (c[i].base == c[j].base && i > j);
}

int hv_ranges_collect(const struct hv_claim *c, u32 n, struct mem_range *out, u32 max)
{
    /*
     * Take the claims in (base, index) order (a selection pass each: a handful of claims), so that
     * every one either extends the last range or starts a new one: the count only grows, and running
     * out of slots means the union really has more than max pieces. Failing then, instead of dropping
     * the rest, is what keeps isolation closed: a range left out would stay mapped in the guest.
     */
    u32 count = 0;
    u32 prev = n;                       /* n: nothing taken yet */
    for (;;) {
        u32 next = n;
        for (u32 i = 0; i < n; i++)
            if (is_hv_claim(&c[i]) && (prev == n || after(c, i, prev)) && (next == n || after(c, next, i)))
                next = i;
        if (next == n)
            return (int)count;
        prev = next;
        u64 base = c[next].base, end = base + c[next].length;
        if (count && base <= out[count - 1].base + out[count - 1].length) {
            struct mem_range *last = &out[count - 1];
            if (end > last->base + last->length)
                last->length = end - last->base;
            continue;
        }
        if (count == max)
            return -1;
        out[count++] = (struct mem_range){ base, end - base, MEM_RESERVED };
    }
}
