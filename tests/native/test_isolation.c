/*
 * Host-side test of the hypervisor-range list isolation relies on (hv/core/mem/hv_ranges.c): every byte of
 * every "image" / "page pool" claim is covered, nothing else is, and a union of more pieces than the
 * list holds is refused (-1), never truncated. Prints "N checks passed" and exits 0, or lists failures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hv/hv_ranges.h>

#include "check.h"

#define MAX 16
#define PAGE 0x1000ull

static bool covered(const struct mem_range *r, int n, u64 addr)
{
    for (int i = 0; i < n; i++)
        if (addr - r[i].base < r[i].length)
            return true;
    return false;
}

static bool claimed(const struct hv_claim *c, u32 n, u64 addr)
{
    for (u32 i = 0; i < n; i++)
        if ((!strcmp(c[i].what, "image") || !strcmp(c[i].what, "page pool")) && addr - c[i].base < c[i].length)
            return true;
    return false;
}

/* Result sorted, disjoint, not adjacent, and exactly the claimed pages (page granular claims). */
static void check_exact(const char *name, const struct hv_claim *c, u32 n, const struct mem_range *r, int count)
{
    for (int i = 1; i < count; i++)
        CHECK(r[i - 1].base + r[i - 1].length < r[i].base, "%s: ranges %d and %d not sorted and apart", name, i - 1, i);
    for (int i = 0; i < count; i++)
        CHECK(r[i].type == MEM_RESERVED && r[i].length, "%s: range %d", name, i);
    for (u32 i = 0; i < n; i++)
        for (u64 a = c[i].base > PAGE ? c[i].base - PAGE : 0; a < c[i].base + c[i].length + PAGE; a += PAGE)
            CHECK(covered(r, count, a) == claimed(c, n, a), "%s: page 0x%llx", name, (unsigned long long)a);
}

int main(void)
{
    struct mem_range out[MAX + 1];
    struct hv_claim c[64];

    /* Adjacent pool ranges below the image (core/lib/relocate.c) and a multiboot module: one range. */
    u32 n = 0;
    c[n++] = (struct hv_claim){ 0x7f00000, 0x100000, "image" };
    c[n++] = (struct hv_claim){ 0x200000, 0x1000, "multiboot" };
    c[n++] = (struct hv_claim){ 0x7e00000, 0x100000, "page pool" };
    c[n++] = (struct hv_claim){ 0x7d00000, 0x100000, "page pool" };
    memset(out, 0xa5, sizeof(out));
    int count = hv_ranges_collect(c, n, out, MAX);
    CHECK(count == 1, "adjacent: %d ranges", count);
    check_exact("adjacent", c, n, out, count);

    /* Exactly MAX separate pieces (unsorted, with duplicates and overlaps): accepted, exact. */
    n = 0;
    for (u32 i = 0; i < MAX; i++) {
        u64 base = 0x10000000ull + (u64)((i * 7) % MAX) * 0x10000;
        c[n++] = (struct hv_claim){ base, 0x4000, i & 1 ? "image" : "page pool" };
        c[n++] = (struct hv_claim){ base + 0x2000, 0x3000, "page pool" };     /* overlaps, extends */
        c[n++] = (struct hv_claim){ base + 0x8000, 0x1000, "module" };        /* not the hypervisor's */
    }
    count = hv_ranges_collect(c, n, out, MAX);
    CHECK(count == MAX, "max pieces: %d ranges", count);
    if (count > 0)
        check_exact("max pieces", c, n, out, count);

    /* MAX + 1 pieces: refused, whatever the order, and nothing is written past the list. */
    for (u32 rot = 0; rot < 5; rot++) {
        n = 0;
        for (u32 i = 0; i <= MAX; i++) {
            u32 k = (i + rot * 3) % (MAX + 1);
            c[n++] = (struct hv_claim){ 0x20000000ull + (u64)k * 0x20000, 0x1000 * (k + 1), "page pool" };
        }
        memset(out, 0xa5, sizeof(out));
        count = hv_ranges_collect(c, n, out, MAX);
        CHECK(count == -1, "MAX+1 pieces (rotation %u): %d", rot, count);
        CHECK(out[MAX].base == 0xa5a5a5a5a5a5a5a5ull, "MAX+1 pieces: wrote past the list");
    }

    /* Many claims that merge into few (a later one bridges earlier pieces): accepted. */
    n = 0;
    for (u32 i = 0; i < 40; i++)
        c[n++] = (struct hv_claim){ 0x30000000ull + (u64)(39 - i) * 0x2000, 0x1000, "page pool" };
    c[n++] = (struct hv_claim){ 0x30000000ull, 40 * 0x2000, "image" };
    count = hv_ranges_collect(c, n, out, MAX);
    CHECK(count == 1, "bridged: %d ranges", count);
    check_exact("bridged", c, n, out, count);

    /* Nothing of the hypervisor's (blue-pill runs): an empty list. */
    c[0] = (struct hv_claim){ 0x1000, 0x1000, "multiboot" };
    CHECK(hv_ranges_collect(c, 1, out, MAX) == 0, "no claims");

    return check_summary();
}
