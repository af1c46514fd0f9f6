/*
 * Host-side tests of the stage-2 identity map (hv/core/mem/stage2.c), the MTRR logic (hv/core/mem/mtrr.c) and
 * the EPT / NPT entry encoders (hv/vmx/ept.c, hv/svm/npt.c), compiled from the hypervisor's own
 * sources. Tables come from aligned_alloc: their (virtual) addresses stand in for physical ones.
 *
 * Memory maps are checked by walking sampled pages: both sides of every boundary where the expected
 * type changes, plus pseudo-random pages, each for type, permissions and hpa == gpa. Prints
 * "N checks passed" and exits 0, or lists the failures and exits 1.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hv/console.h>
#include <hv/stage2.h>
#include <hv/svm/npt.h>
#include <hv/vmx/ept.h>

#include "check.h"

/* --- shims for the hypervisor console: keep the last line for the summary test ----------------- */

static char last_line[256];

void printk(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_line, sizeof(last_line), fmt, ap);
    va_end(ap);
}

/* --- table pages ------------------------------------------------------------------------------- */

struct pages {
    void *page[1 << 12];
    unsigned count;
};

static void *alloc_page(void *ctx)
{
    struct pages *p = ctx;
    if (p->count == sizeof(p->page) / sizeof(p->page[0]))
        return NULL;
    void *page = aligned_alloc(4096, 4096);
    if (page) {
        memset(page, 0, 4096);
        p->page[p->count++] = page;
    }
    return page;
}

static void free_pages(struct pages *p)
{
    while (p->count)
        free(p->page[--p->count]);
}

static u64 rng_state = 0x9e3779b97f4a7c15ull;

static u64 rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* --- building blocks for maps and MTRRs --------------------------------------------------------- */

static struct memmap make_map(const struct mem_range *r, u32 n)
{
    struct memmap m = { .count = n };
    memcpy(m.range, r, n * sizeof(*r));
    return m;
}

static u64 fill8(u8 type)
{
    return 0x0101010101010101ull * type;
}

/* Variable range n: [base, base+size), size a power of two, base aligned to it (SDM Vol. 3A 13.11.3). */
static void set_var(struct mtrr_state *st, u32 n, u64 base, u64 size, u8 type)
{
    st->var[n].base = base | type;
    st->var[n].mask = (~(size - 1) & ((1ull << st->phys_bits) - 1)) | MTRR_PHYSMASK_V;
}

/* What a map must look like: types by segment (each up to the next start) and one protected range. */
struct seg {
    u64 start;
    u8 type;
};

struct expect {
    const struct seg *seg;
    u32 segs;
    u64 prot_lo, prot_hi;   /* [prot_lo, prot_hi) has prot_perms, the rest RWX */
    u8 prot_perms;
};

static u8 expected_type(const struct expect *e, u64 gpa)
{
    u8 type = e->seg[0].type;
    for (u32 i = 0; i < e->segs && e->seg[i].start <= gpa; i++)
        type = e->seg[i].type;
    return type;
}

static void check_page(const char *name, const struct stage2 *s, const struct expect *e, u64 gpa)
{
    struct stage2_walk w;
    u64 at = gpa + (rng() & 0xfff);
    u8 perms = gpa >= e->prot_lo && gpa < e->prot_hi ? e->prot_perms : STAGE2_RWX;
    int rc = stage2_walk(s, at, &w);
    CHECK(rc == 0 && w.hpa == at && w.memtype == expected_type(e, gpa) && w.perms == perms,
          "%s: gpa 0x%lx: rc %d hpa 0x%lx type %u (want %u) perms %u (want %u)", name, at, rc, w.hpa,
          w.memtype, expected_type(e, gpa), w.perms, perms);
}

/* Both sides of every type change, 4096 random pages below 4 GiB and 256 above. */
static void check_map(const char *name, const struct stage2 *s, const struct expect *e)
{
    for (u32 i = 0; i < e->segs; i++) {
        if (e->seg[i].start)
            check_page(name, s, e, e->seg[i].start - PAGE_SIZE);
        check_page(name, s, e, e->seg[i].start);
    }
    for (u32 i = 0; i < 4096; i++)
        check_page(name, s, e, (rng() % GiB(4)) & ~(PAGE_SIZE - 1));
    for (u32 i = 0; i < 256 && s->top > GiB(4); i++)
        check_page(name, s, e, GiB(4) + ((rng() % (s->top - GiB(4))) & ~(PAGE_SIZE - 1)));
    struct stage2_walk w;
    CHECK(stage2_walk(s, s->top, &w) == -1, "%s: top 0x%lx must be unmapped", name, s->top);
    CHECK(stage2_walk(s, s->top - 1, &w) == 0, "%s: top - 1 must be mapped", name);
}

static void check_counts(const char *name, const struct stage2 *s, u64 g1, u64 m2, u64 k4, u64 tables)
{
    CHECK(s->leaves[3] == g1 && s->leaves[2] == m2 && s->leaves[1] == k4 && s->tables == tables,
          "%s: got %lu 1G, %lu 2M, %lu 4K, %lu tables; want %lu, %lu, %lu, %lu", name, s->leaves[3],
          s->leaves[2], s->leaves[1], s->tables, g1, m2, k4, tables);
}

static void build(struct stage2 *s, struct pages *p, const struct stage2_ops *ops, u32 sizes,
                  const struct memmap *m, const struct mtrr_state *mt)
{
    *s = (struct stage2){ .ops = ops, .page_sizes = sizes, .alloc_page = alloc_page, .alloc_ctx = p };
    CHECK(stage2_build_identity(s, m, mt) == 0, "%s: build failed", ops->name);
}

/* --- (a) QEMU q35, 256 MiB ---------------------------------------------------------------------- */

static const struct mem_range q35_ranges[] = {
    { 0x0, 0x9fc00, MEM_USABLE },
    { 0x9fc00, 0x400, MEM_RESERVED },
    { 0xf0000, 0x10000, MEM_RESERVED },
    { 0x100000, 0xffdf000 - 0x100000, MEM_USABLE },
    { 0xffdf000, 0x21000, MEM_RESERVED },
    { 0xb0000000, 0x10000000, MEM_RESERVED },
    { 0xfed1c000, 0x4000, MEM_RESERVED },
    { 0xfffc0000, 0x40000, MEM_RESERVED },
    { 0xfd00000000, 0x300000000, MEM_RESERVED },
};

/*
 * MTRRs as SeaBIOS leaves them on q35, except 0xC0000-0xFFFFF: chosen WP here (the classic BIOS
 * shadow setting, SDM Vol. 3A 13.3) so the test shows non-RAM stays UC whatever the MTRRs say.
 * MTRRCAP 0x508: 8 variable ranges, fixed ranges, WC. DEF_TYPE 0xC06: E, FE, default WB.
 * Fixed: 0-0x9FFFF WB, 0xA0000-0xBFFFF UC, 0xC0000-0xFFFFF WP. Variable 0: UC [3 GiB, 4 GiB).
 * MAXPHYADDR 40 (QEMU's default), so PHYSMASK0 = 0xFF_C000_0800.
 */
static struct mtrr_state q35_mtrrs(void)
{
    struct mtrr_state st = { .cap = 0x508, .def_type = 0xc06, .var_count = 8, .phys_bits = 40 };
    st.fixed[0] = fill8(MEMTYPE_WB);
    st.fixed[1] = fill8(MEMTYPE_WB);
    st.fixed[2] = fill8(MEMTYPE_UC);
    for (int i = 3; i < MTRR_FIXED_MSRS; i++)
        st.fixed[i] = fill8(MEMTYPE_WP);
    set_var(&st, 0, 0xc0000000, GiB(1), MEMTYPE_UC);
    return st;
}

/*
 * RAM is [0, 0x9fc00) and [0x100000, 0xffdf000). The page at 0x9f000 is partly reserved, so not RAM.
 * Everything from 0xffdf000 up is UC, up to top = 1 TiB (the end of [0xfd00000000, 0x10000000000)).
 */
static const struct seg q35_segs[] = {
    { 0x0, MEMTYPE_WB }, { 0x9f000, MEMTYPE_UC }, { 0x100000, MEMTYPE_WB }, { 0xffdf000, MEMTYPE_UC },
};

static void test_q35(void)
{
    struct memmap m = make_map(q35_ranges, sizeof(q35_ranges) / sizeof(q35_ranges[0]));
    struct mtrr_state mt = q35_mtrrs();
    struct expect e = { q35_segs, 4, 0, 0, 0 };
    bool uniform;

    /* The MTRR view of the same machine, before the memory map is applied. */
    CHECK(mtrr_type_of_range(&mt, 0, 0xa0000, &uniform) == MEMTYPE_WB && uniform, "q35 MTRR low RAM");
    CHECK(mtrr_type_of_range(&mt, 0xa0000, 0x20000, &uniform) == MEMTYPE_UC && uniform, "q35 MTRR VGA");
    CHECK(mtrr_type_of_range(&mt, 0xc0000, 0x40000, &uniform) == MEMTYPE_WP && uniform, "q35 MTRR shadow");
    CHECK(mtrr_type_of_range(&mt, 0, MiB(1), &uniform) == MEMTYPE_WB && !uniform, "q35 MTRR first MiB");
    CHECK(mtrr_type_of_range(&mt, MiB(1), GiB(3) - MiB(1), &uniform) == MEMTYPE_WB && uniform, "q35 MTRR RAM");
    CHECK(mtrr_type_of_range(&mt, GiB(3), GiB(1), &uniform) == MEMTYPE_UC && uniform, "q35 MTRR PCI hole");
    CHECK(mtrr_type_of_range(&mt, GiB(4), GiB(1000), &uniform) == MEMTYPE_WB && uniform, "q35 MTRR above 4G");

    /*
     * Expected leaves with 1 GiB pages, top = 1 TiB = 1024 GiB:
     *  1G: GiB 1..1023 are all UC                                              -> 1023
     *  GiB 0 is a PD. 2M: block 0 mixes WB/UC (a PT), blocks 1..126 WB, block 127
     *  [0xfe00000, 0x10000000) holds 0xffdf000 (a PT), blocks 128..511 UC      -> 126 + 384 = 510
     *  4K: the two PTs                                                         -> 1024
     *  Tables: PML4, 2 PDPTs (1 TiB spans two 512 GiB PML4 entries), 1 PD, 2 PTs -> 6
     * The summary line and the NPT build must agree.
     */
    struct pages p = { .count = 0 };
    struct stage2 s;
    build(&s, &p, &ept_ops, STAGE2_SIZE_2M | STAGE2_SIZE_1G, &m, &mt);
    check_counts("q35 EPT 1G", &s, 1023, 510, 1024, 6);
    CHECK(s.top == GiB(1024), "q35 top 0x%lx", s.top);
    check_map("q35 EPT 1G", &s, &e);
    stage2_print_summary(&s);
    CHECK(!strcmp(last_line, "stage-2: 1023 1G, 510 2M, 1024 4K leaves, 6 tables\n"), "summary: %s", last_line);

    /* The walk records every level; the 2 MiB leaf at 0x200000 is the SDM-style 0x2000b7. */
    struct stage2_walk w;
    CHECK(stage2_walk(&s, 0x200000, &w) == 0 && w.level == 2 && w.entry[2] == 0x2000b7 && w.entry[1] == 0 &&
          w.page_size == MiB(2) && (w.entry[4] & 7) == 7 && (w.entry[3] & 0x87) == 7,
          "walk 0x200000: level %d entries %lx %lx %lx %lx", w.level, w.entry[4], w.entry[3], w.entry[2],
          w.entry[1]);
    CHECK(stage2_walk(&s, 0x9f000, &w) == 0 && w.level == 1 && w.entry[1] == 0x9f007,
          "walk 0x9f000 (EBDA page, UC): %lx", w.entry[1]);
    CHECK(stage2_walk(&s, GiB(5), &w) == 0 && w.level == 3 && w.entry[3] == 0x140000087 && w.entry[2] == 0,
          "walk 5G (1G UC leaf): %lx", w.entry[3]);
    CHECK(stage2_walk(&s, 0xfee00000, &w) == 0 && w.memtype == MEMTYPE_UC, "LAPIC page is UC");
    CHECK(stage2_walk(&s, 0xfec00000, &w) == 0 && w.memtype == MEMTYPE_UC, "IOAPIC page is UC");

    /*
     * Split a 1G UC leaf down to 4K: one PD (511 2M leaves + 1 PT of 512) replaces it. Then a 2M WB
     * leaf: one more PT. Types, perms and translations must not change anywhere.
     */
    CHECK(stage2_split(&s, GiB(1) + 0x123000, 1) == 0, "split 1G");
    check_counts("q35 after 1G split", &s, 1022, 510 + 511, 1024 + 512, 8);
    CHECK(stage2_walk(&s, GiB(1) + 0x123456, &w) == 0 && w.level == 1 && w.memtype == MEMTYPE_UC &&
          w.perms == STAGE2_RWX && w.hpa == GiB(1) + 0x123456, "walk after 1G split");
    CHECK(stage2_walk(&s, GiB(1) + MiB(7), &w) == 0 && w.level == 2 && w.memtype == MEMTYPE_UC,
          "neighbour 2M after 1G split");
    CHECK(stage2_split(&s, 0x200000, 1) == 0, "split 2M");
    check_counts("q35 after 2M split", &s, 1022, 1020, 2048, 9);
    for (u64 a = 0x200000; a < 0x400000; a += PAGE_SIZE)
        check_page("q35 split 2M", &s, &e, a);
    for (u64 a = GiB(1); a < GiB(1) + MiB(2); a += PAGE_SIZE)
        check_page("q35 split 1G", &s, &e, a);
    CHECK(stage2_split(&s, 0x200000, 2) == 0, "split to a larger level is a no-op");
    check_counts("q35 no-op split", &s, 1022, 1020, 2048, 9);
    CHECK(stage2_split(&s, s.top, 1) == -1 && stage2_split(&s, 0, 0) == -1 && stage2_split(&s, 0, 4) == -1,
          "split rejects gpa >= top and levels outside 1..3");
    check_map("q35 EPT after splits", &s, &e);
    free_pages(&p);

    build(&s, &p, &npt_ops, STAGE2_SIZE_2M | STAGE2_SIZE_1G, &m, &mt);
    check_counts("q35 NPT 1G", &s, 1023, 510, 1024, 6);
    check_map("q35 NPT 1G", &s, &e);
    free_pages(&p);

    /* Without 1 GiB pages each of the 1023 UC GiBs is a PD of 512 2M leaves: 1024 PDs in all. */
    build(&s, &p, &ept_ops, STAGE2_SIZE_2M, &m, &mt);
    check_counts("q35 EPT 2M", &s, 0, 510 + 1023 * 512, 1024, 1 + 2 + 1024 + 2);
    check_map("q35 EPT 2M", &s, &e);
    free_pages(&p);
}

/* --- (b) Bochs, MTRRs disabled ------------------------------------------------------------------ */

static const struct mem_range bochs_ranges[] = {
    { 0x0, 0x9f000, MEM_USABLE },
    { 0x9f000, 0x1000, MEM_RESERVED },
    { 0xe8000, 0x18000, MEM_RESERVED },
    { 0x100000, 0xfff0000 - 0x100000, MEM_USABLE },
    { 0xfff0000, 0x10000, MEM_ACPI_RECLAIM },
    { 0xfffc0000, 0x40000, MEM_RESERVED },
};

/* MTRRs disabled: RAM (usable + ACPI data, which join up at 0xfff0000) is WB, the rest UC. Top 4 GiB. */
static const struct seg bochs_segs[] = {
    { 0x0, MEMTYPE_WB }, { 0x9f000, MEMTYPE_UC }, { 0x100000, MEMTYPE_WB }, { 0x10000000, MEMTYPE_UC },
};

static void test_bochs(void)
{
    struct memmap m = make_map(bochs_ranges, sizeof(bochs_ranges) / sizeof(bochs_ranges[0]));
    struct mtrr_state mt = { .cap = 0 };
    struct expect e = { bochs_segs, 4, 0, 0, 0 };
    struct pages p = { .count = 0 };
    struct stage2 s;
    struct stage2_walk w;

    /*
     * With 1 GiB pages: GiB 1..3 UC -> 3 1G leaves. GiB 0 is a PD: 2M block 0 mixes (a PT of 512),
     * blocks 1..127 (up to 256 MiB, ACPI data included) WB, blocks 128..511 UC -> 511 2M leaves.
     * Tables: PML4, PDPT, PD, PT = 4. Without 1 GiB pages GiB 1..3 become 3 PDs of 512.
     */
    build(&s, &p, &ept_ops, STAGE2_SIZE_2M | STAGE2_SIZE_1G, &m, &mt);
    check_counts("bochs EPT 1G", &s, 3, 511, 512, 4);
    CHECK(s.top == GiB(4), "bochs top 0x%lx", s.top);
    check_map("bochs EPT 1G", &s, &e);
    free_pages(&p);

    build(&s, &p, &ept_ops, STAGE2_SIZE_2M, &m, &mt);
    check_counts("bochs EPT 2M", &s, 0, 511 + 3 * 512, 512, 7);
    check_map("bochs EPT 2M", &s, &e);
    free_pages(&p);

    /*
     * Protect [0x5ff000, 0x801000) read+execute: the 2M leaf at 0x600000 lies inside and only changes
     * perms; those at 0x400000 and 0x800000 straddle the ends and are split (2 PTs).
     */
    build(&s, &p, &ept_ops, STAGE2_SIZE_2M | STAGE2_SIZE_1G, &m, &mt);
    CHECK(stage2_protect(&s, 0x5ff000, 0x202000, STAGE2_R | STAGE2_X) == 0, "protect");
    check_counts("bochs after protect", &s, 3, 509, 512 + 1024, 6);
    e = (struct expect){ bochs_segs, 4, 0x5ff000, 0x801000, STAGE2_R | STAGE2_X };
    for (u64 a = 0x400000; a < 0xa00000; a += PAGE_SIZE)
        check_page("bochs protect", &s, &e, a);
    check_map("bochs protect", &s, &e);
    CHECK(stage2_walk(&s, 0x600000, &w) == 0 && w.level == 2 && w.entry[2] == 0x6000b5, "inner leaf kept 2M");
    CHECK(stage2_walk(&s, 0x5fe000, &w) == 0 && w.level == 1 && w.entry[1] == 0x5fe037, "split neighbour");

    /* Same perms again: nothing to split. No access: not present, address and type kept. */
    CHECK(stage2_protect(&s, 0x401000, PAGE_SIZE, STAGE2_RWX) == 0, "protect to current perms");
    check_counts("bochs no-op protect", &s, 3, 509, 1536, 6);
    CHECK(stage2_protect(&s, 0x5ff000, PAGE_SIZE, 0) == 0, "protect none");
    CHECK(stage2_walk(&s, 0x5ff010, &w) == 0 && w.perms == 0 && w.memtype == MEMTYPE_WB && w.hpa == 0x5ff010 &&
          w.entry[1] == 0x5ff030, "no-access page: %lx", w.entry[1]);
    CHECK(stage2_protect(&s, 0x5ff000, PAGE_SIZE, STAGE2_RWX) == 0, "restore");
    CHECK(stage2_walk(&s, 0x5ff000, &w) == 0 && w.perms == STAGE2_RWX && w.entry[1] == 0x5ff037, "restored");

    /* A whole 1G leaf: changed in place, no table. */
    CHECK(stage2_protect(&s, GiB(1), GiB(1), STAGE2_R) == 0, "protect 1G");
    CHECK(stage2_walk(&s, GiB(1) + 5, &w) == 0 && w.level == 3 && w.perms == STAGE2_R && w.memtype == MEMTYPE_UC,
          "1G leaf read-only");
    check_counts("bochs 1G protect", &s, 3, 509, 1536, 6);

    CHECK(stage2_protect(&s, 0x5ff800, PAGE_SIZE, STAGE2_R) == -1, "unaligned gpa");
    CHECK(stage2_protect(&s, 0x5ff000, 0x800, STAGE2_R) == -1, "unaligned len");
    CHECK(stage2_protect(&s, 0x5ff000, PAGE_SIZE, STAGE2_W) == -1, "write without read");
    CHECK(stage2_protect(&s, 0x5ff000, PAGE_SIZE, 8) == -1, "unknown perm bit");
    CHECK(stage2_protect(&s, s.top - PAGE_SIZE, 2 * PAGE_SIZE, STAGE2_R) == -1, "beyond top");
    free_pages(&p);

    /* NPT: read-only, no execute = P and U/S, no R/W, NX. */
    build(&s, &p, &npt_ops, STAGE2_SIZE_2M | STAGE2_SIZE_1G, &m, &mt);
    check_counts("bochs NPT 1G", &s, 3, 511, 512, 4);
    check_map("bochs NPT 1G", &s, &(struct expect){ bochs_segs, 4, 0, 0, 0 });
    CHECK(stage2_protect(&s, 0x5ff000, PAGE_SIZE, STAGE2_R) == 0, "NPT protect");
    CHECK(stage2_walk(&s, 0x5ff000, &w) == 0 && w.perms == STAGE2_R && w.entry[1] == 0x80000000005ff005ull,
          "NPT read-only page: %lx", w.entry[1]);
    free_pages(&p);
}

/* --- a RAM-heavy map whose types come from variable MTRRs ------------------------------------- */

static const struct mem_range big_ranges[] = {
    { 0x0, 0x9fc00, MEM_USABLE },
    { 0x9fc00, 0x400, MEM_RESERVED },
    { 0xf0000, 0x10000, MEM_RESERVED },
    { 0x100000, 0xc0000000 - 0x100000, MEM_USABLE },
    { 0xfec00000, 0x1000, MEM_RESERVED },
    { 0xfee00000, 0x1000, MEM_RESERVED },
    { 0x100000000, 0x140000000, MEM_USABLE },
};

/*
 * Default UC, fixed as in q35, RAM covered by WB ranges [0, 2G), [2G, 3G), [4G, 8G), [8G, 9G), with
 * WT [256M, 272M), a WC range overlapping WB at [512M, 514M) (undefined: UC), one UC page at
 * 0x30001000, and a disabled range that must be ignored.
 */
static struct mtrr_state big_mtrrs(void)
{
    struct mtrr_state st = q35_mtrrs();
    st.def_type = 0xc00 | MEMTYPE_UC;
    set_var(&st, 0, 0, GiB(2), MEMTYPE_WB);
    set_var(&st, 1, GiB(2), GiB(1), MEMTYPE_WB);
    set_var(&st, 2, GiB(4), GiB(4), MEMTYPE_WB);
    set_var(&st, 3, GiB(8), GiB(1), MEMTYPE_WB);
    set_var(&st, 4, 0x10000000, MiB(16), MEMTYPE_WT);
    set_var(&st, 5, 0x20000000, MiB(2), MEMTYPE_WC);
    set_var(&st, 6, 0x30001000, PAGE_SIZE, MEMTYPE_UC);
    set_var(&st, 7, 0, GiB(4), MEMTYPE_UC);
    st.var[7].mask &= ~MTRR_PHYSMASK_V;
    return st;
}

static const struct seg big_segs[] = {
    { 0x0, MEMTYPE_WB },          { 0x9f000, MEMTYPE_UC },    { 0x100000, MEMTYPE_WB },
    { 0x10000000, MEMTYPE_WT },   { 0x11000000, MEMTYPE_WB }, { 0x20000000, MEMTYPE_UC },
    { 0x20200000, MEMTYPE_WB },   { 0x30001000, MEMTYPE_UC }, { 0x30002000, MEMTYPE_WB },
    { 0xc0000000, MEMTYPE_UC },   { GiB(4), MEMTYPE_WB },
};

static void test_big(void)
{
    struct memmap m = make_map(big_ranges, sizeof(big_ranges) / sizeof(big_ranges[0]));
    struct mtrr_state mt = big_mtrrs();
    struct expect e = { big_segs, sizeof(big_segs) / sizeof(big_segs[0]), 0, 0, 0 };
    const struct stage2_ops *ops[] = { &ept_ops, &npt_ops };

    /*
     * Top 9 GiB. 1G leaves: GiB 1, 2 (WB), 3 (UC, no RAM), 4..8 (WB) -> 8. GiB 0 is a PD: 2M block 0
     * mixes (PT), 1..127 WB, 128..135 WT, 136..255 WB, 256 UC (WB+WC), 257..383 WB, 384 holds the UC
     * page (PT), 385..511 WB -> 127+8+120+1+127+127 = 510 2M leaves, 2 PTs. Tables: 1+1+1+2 = 5.
     */
    for (int i = 0; i < 2; i++) {
        struct pages p = { .count = 0 };
        struct stage2 s;
        build(&s, &p, ops[i], STAGE2_SIZE_2M | STAGE2_SIZE_1G, &m, &mt);
        check_counts(ops[i]->name, &s, 8, 510, 1024, 5);
        CHECK(s.top == GiB(9), "big top 0x%lx", s.top);
        check_map(ops[i]->name, &s, &e);
        free_pages(&p);
    }
}

/* --- (c) MTRR precedence and lookups (SDM Vol. 3A 13.11.4.1) ----------------------------------- */

static struct mtrr_state plain_mtrrs(void)
{
    struct mtrr_state st = { .cap = 0x508, .def_type = 0xc06, .var_count = 8, .phys_bits = 36 };
    for (int i = 0; i < MTRR_FIXED_MSRS; i++)
        st.fixed[i] = fill8(MEMTYPE_WB);
    return st;
}

static u8 type1(const struct mtrr_state *st, u64 base, u64 len, bool want_uniform)
{
    bool uniform;
    u8 t = mtrr_type_of_range(st, base, len, &uniform);
    CHECK(uniform == want_uniform, "[0x%lx, +0x%lx) uniform=%d", base, len, uniform);
    return t;
}

static void test_mtrr(void)
{
    struct mtrr_state st = plain_mtrrs();

    /* UC over WB. */
    set_var(&st, 0, 0, GiB(4), MEMTYPE_WB);
    set_var(&st, 1, 0x80000000, MiB(256), MEMTYPE_UC);
    CHECK(type1(&st, 0x80000000, MiB(256), true) == MEMTYPE_UC, "UC over WB");
    CHECK(type1(&st, 0x7ff00000, MiB(2), false) == MEMTYPE_WB, "type at base when mixed");
    CHECK(type1(&st, 0x90000000, MiB(1), true) == MEMTYPE_WB, "after the UC range");
    /* WT over WB. */
    set_var(&st, 1, 0x80000000, MiB(256), MEMTYPE_WT);
    CHECK(type1(&st, 0x80000000, MiB(256), true) == MEMTYPE_WT, "WT over WB");
    /* WB + WC: undefined -> UC. WC + WC stays WC. WT + WC: undefined -> UC. */
    set_var(&st, 1, 0x80000000, MiB(256), MEMTYPE_WC);
    CHECK(type1(&st, 0x80000000, PAGE_SIZE, true) == MEMTYPE_UC, "WB + WC");
    set_var(&st, 0, 0x80000000, GiB(1), MEMTYPE_WC);
    CHECK(type1(&st, 0x80000000, PAGE_SIZE, true) == MEMTYPE_WC, "WC + WC");
    set_var(&st, 0, 0x80000000, GiB(1), MEMTYPE_WT);
    CHECK(type1(&st, 0x80000000, PAGE_SIZE, true) == MEMTYPE_UC, "WT + WC");
    /* Three ranges: WT + WB + WT is WT; add UC and it is UC. */
    set_var(&st, 0, 0, GiB(4), MEMTYPE_WT);
    set_var(&st, 1, 0, GiB(2), MEMTYPE_WB);
    set_var(&st, 2, 0, GiB(1), MEMTYPE_WT);
    CHECK(type1(&st, MiB(1), PAGE_SIZE, true) == MEMTYPE_WT, "WT + WB + WT");
    set_var(&st, 3, 0, MiB(2), MEMTYPE_UC);
    CHECK(type1(&st, MiB(1), PAGE_SIZE, true) == MEMTYPE_UC, "WT + WB + WT + UC");
    /* A range with V clear is ignored. */
    st.var[3].mask &= ~MTRR_PHYSMASK_V;
    CHECK(type1(&st, MiB(1), PAGE_SIZE, true) == MEMTYPE_WT, "V=0 ignored");
    /* Not covered by any range: the default type. */
    CHECK(type1(&st, GiB(5), GiB(1), true) == MEMTYPE_WB, "default type");
    /* MTRRs disabled (DEF_TYPE.E=0): everything UC. */
    st.def_type &= ~MTRR_DEF_TYPE_E;
    CHECK(type1(&st, 0, GiB(64), true) == MEMTYPE_UC && !mtrr_enabled(&st), "disabled");

    /* Fixed ranges (SDM Vol. 3A 13.11.2.2), which beat variable ranges below 1 MiB when enabled. */
    st = plain_mtrrs();
    st.fixed[0] = fill8(MEMTYPE_WB) & ~0xff00ull;          /* 0x10000-0x1FFFF UC */
    st.fixed[2] = fill8(MEMTYPE_UC) | (u64)MEMTYPE_WC << 32;  /* 0xA0000-0xBFFFF UC but 0xB0000-0xB3FFF WC */
    st.fixed[3] = fill8(MEMTYPE_WP) & ~(0xffull << 56);     /* 0xC0000-0xC7FFF WP but 0xC7000 UC */
    st.fixed[3] |= (u64)MEMTYPE_WT << 56;                   /* ... make that 0xC7000 WT */
    for (int i = 4; i < MTRR_FIXED_MSRS; i++)
        st.fixed[i] = fill8(MEMTYPE_WP);
    set_var(&st, 0, 0, MiB(1), MEMTYPE_UC);
    CHECK(type1(&st, 0, 0x10000, true) == MEMTYPE_WB, "fixed beats variable below 1 MiB");
    CHECK(type1(&st, 0x10000, 0x10000, true) == MEMTYPE_UC, "64K sub-range 1");
    CHECK(type1(&st, 0xf000, 0x2000, false) == MEMTYPE_WB, "across 64K sub-ranges");
    CHECK(type1(&st, 0x20000, 0x80000, true) == MEMTYPE_WB, "64K + 16K ranges");
    CHECK(type1(&st, 0xb0000, 0x4000, true) == MEMTYPE_WC, "16K sub-range");
    CHECK(type1(&st, 0xa0000, 0x20000, false) == MEMTYPE_UC, "VGA window mixed");
    CHECK(type1(&st, 0xc6000, PAGE_SIZE, true) == MEMTYPE_WP, "4K sub-range 6");
    CHECK(type1(&st, 0xc7000, PAGE_SIZE, true) == MEMTYPE_WT, "4K sub-range 7");
    CHECK(type1(&st, 0xc8000, 0x38000, true) == MEMTYPE_WP, "0xC8000-0xFFFFF");
    CHECK(type1(&st, 0xff000, 0x2000, false) == MEMTYPE_WP, "across 1 MiB");
    CHECK(type1(&st, MiB(1), MiB(1), true) == MEMTYPE_WB, "above 1 MiB: variable and default");
    st.def_type &= ~MTRR_DEF_TYPE_FE;
    CHECK(type1(&st, 0, MiB(1), true) == MEMTYPE_UC, "FE=0: the variable range applies");

    /*
     * A non-contiguous mask (legal, SDM Vol. 3A 13.11.3): MAXPHYADDR 36, mask bits 28 and 31..35, base
     * 0 matches [0, 256M), [512M, 768M), [1G, 1.25G), [1.5G, 1.75G). Fixed ranges off.
     */
    st = plain_mtrrs();
    st.def_type &= ~MTRR_DEF_TYPE_FE;
    st.var[0].base = MEMTYPE_UC;
    st.var[0].mask = 0xf90000000ull | MTRR_PHYSMASK_V;
    CHECK(type1(&st, 0, MiB(256), true) == MEMTYPE_UC, "block 0");
    CHECK(type1(&st, MiB(256), MiB(256), true) == MEMTYPE_WB, "gap 1");
    CHECK(type1(&st, MiB(512), MiB(256), true) == MEMTYPE_UC, "block 1");
    CHECK(type1(&st, MiB(1280), MiB(256), true) == MEMTYPE_WB, "gap 3");
    CHECK(type1(&st, MiB(1280), MiB(256) + PAGE_SIZE, false) == MEMTYPE_WB, "gap 3 into block 3");
    CHECK(type1(&st, MiB(1536), MiB(256), true) == MEMTYPE_UC, "block 3");
    CHECK(type1(&st, MiB(1792), GiB(62), true) == MEMTYPE_WB, "no block above 1.75G");
    CHECK(type1(&st, 0, GiB(1), false) == MEMTYPE_UC, "several blocks");

    /* Addresses at or above MAXPHYADDR never alias into a range: 64 GiB is not 0 with 36 bits. */
    st = plain_mtrrs();
    set_var(&st, 0, 0, GiB(4), MEMTYPE_UC);
    CHECK(type1(&st, GiB(64), PAGE_SIZE, true) == MEMTYPE_WB, "no alias above MAXPHYADDR");
    CHECK(type1(&st, GiB(3), GiB(2), false) == MEMTYPE_UC, "range end at 4G");
}

/* --- encoders: SDM Vol. 3C 29.3.2 (Tables 29-1..29-6) and APM Vol. 2 15.25 / 5.3 ---------------- */

static void test_ept_encoding(void)
{
    struct stage2_pte d;
    /* RWX = bits 2:0, WB (6) in bits 5:3 = 0x30, large page bit 7 = 0x80. */
    CHECK(ept_ops.leaf(0x200000, 2, STAGE2_RWX, MEMTYPE_WB) == 0x2000b7, "Table 29-4: 2M WB RWX");
    CHECK(ept_ops.leaf(0x40000000, 3, STAGE2_RWX, MEMTYPE_WB) == 0x400000b7, "Table 29-2: 1G WB RWX");
    CHECK(ept_ops.leaf(0x1000, 1, STAGE2_RWX, MEMTYPE_WB) == 0x1037, "Table 29-6: 4K WB RWX");
    CHECK(ept_ops.leaf(0xfee00000, 1, STAGE2_R | STAGE2_W, MEMTYPE_UC) == 0xfee00003, "4K UC RW (LAPIC)");
    CHECK(ept_ops.leaf(0xabcd000, 1, STAGE2_X, MEMTYPE_WT) == 0xabcd024, "4K WT execute-only");
    CHECK(ept_ops.leaf(0xffffffe00000, 2, STAGE2_R, MEMTYPE_WP) == 0xffffffe000a9, "2M WP R, high address");
    CHECK(ept_ops.table(0x12345000) == 0x12345007, "Tables 29-1/3/5: table pointer RWX");
    CHECK(ept_eptp(0x1000, false) == 0x101e, "EPTP: WB, 4-level");
    CHECK(ept_eptp(0x1000, true) == 0x105e, "EPTP: A/D enabled");
    CHECK(ept_page_sizes(0) == 0 && ept_page_sizes(1ull << 16) == STAGE2_SIZE_2M &&
          ept_page_sizes(3ull << 16) == (STAGE2_SIZE_2M | STAGE2_SIZE_1G), "EPT caps bits 16/17");

    ept_ops.decode(0x2000b7, 2, &d);
    CHECK(d.present && d.leaf && d.addr == 0x200000 && d.perms == STAGE2_RWX && d.memtype == MEMTYPE_WB, "decode 2M");
    ept_ops.decode(0x12345007, 2, &d);
    CHECK(d.present && !d.leaf && d.addr == 0x12345000, "decode table pointer");
    ept_ops.decode(0x2000b0, 2, &d);
    CHECK(!d.present && d.leaf && d.memtype == MEMTYPE_WB && d.perms == 0, "no-access leaf keeps its type");
    ept_ops.decode(0x12345087, 4, &d);
    CHECK(!d.leaf, "a PML4E is never a leaf");

    static const u8 types[] = { MEMTYPE_UC, MEMTYPE_WC, MEMTYPE_WT, MEMTYPE_WP, MEMTYPE_WB };
    for (int level = 1; level <= 3; level++)
        for (u8 perms = 0; perms <= STAGE2_RWX; perms++)
            for (u32 t = 0; t < sizeof(types); t++) {
                u64 hpa = 0x1234ull << 30;
                ept_ops.decode(ept_ops.leaf(hpa, level, perms, types[t]), level, &d);
                CHECK(d.leaf && d.addr == hpa && d.perms == perms && d.memtype == types[t] && d.present == !!perms,
                      "EPT round trip level %d perms %u type %u", level, perms, types[t]);
            }
}

static void test_npt_encoding(void)
{
    struct stage2_pte d;
    /* P|RW|US = 7, PS = 0x80, PWT = 8, PCD = 0x10, NX = bit 63. Default PAT: 0 WB, 1 WT, 3 UC. */
    CHECK(npt_ops.leaf(0x200000, 2, STAGE2_RWX, MEMTYPE_WB) == 0x200087, "2M WB RWX");
    CHECK(npt_ops.leaf(0x40000000, 3, STAGE2_RWX, MEMTYPE_WB) == 0x40000087, "1G WB RWX");
    CHECK(npt_ops.leaf(0x1000, 1, STAGE2_RWX, MEMTYPE_WB) == 0x1007, "4K WB RWX");
    CHECK(npt_ops.leaf(0x1000, 1, STAGE2_RWX, MEMTYPE_UC) == 0x101f, "4K UC: PAT index 3");
    CHECK(npt_ops.leaf(0x200000, 2, STAGE2_RWX, MEMTYPE_WT) == 0x20008f, "2M WT: PAT index 1");
    CHECK(npt_ops.leaf(0x1000, 1, STAGE2_R, MEMTYPE_WB) == 0x8000000000001005ull, "read-only, NX");
    CHECK(npt_ops.leaf(0x1000, 1, 0, MEMTYPE_WB) == 0x8000000000001004ull, "no access: P clear");
    CHECK(npt_ops.leaf(0x1000, 1, STAGE2_RWX, MEMTYPE_WC) == 0x101f &&
          npt_ops.leaf(0x1000, 1, STAGE2_RWX, MEMTYPE_WP) == 0x101f, "WC and WP need a PAT change: UC");
    CHECK(npt_ops.table(0x12345000) == 0x12345007, "table pointer P|RW|US");
    CHECK(npt_page_sizes(0) == STAGE2_SIZE_2M && npt_page_sizes(1u << 26) == (STAGE2_SIZE_2M | STAGE2_SIZE_1G),
          "CPUID 80000001H:EDX.Page1GB");

    /*
     * The PAT bit is bit 7 in a PTE and bit 12 in a large entry (where bit 7 is PS): never part of a
     * large page's address. With the power-on PAT, index 4..7 repeat 0..3.
     */
    npt_ops.decode(0x1087, 1, &d);
    CHECK(d.leaf && d.addr == 0x1000 && d.memtype == MEMTYPE_WB, "PTE PAT bit 7: index 4 = WB");
    npt_ops.decode(0x20109f, 2, &d);
    CHECK(d.leaf && d.addr == 0x200000 && d.memtype == MEMTYPE_UC, "PDE PAT bit 12 + PCD + PWT: index 7 = UC");
    npt_ops.decode(0x20108f, 2, &d);
    CHECK(d.leaf && d.addr == 0x200000 && d.memtype == MEMTYPE_WT, "PDE index 5 = WT");
    npt_ops.decode(0x40001087, 3, &d);
    CHECK(d.leaf && d.addr == 0x40000000 && d.memtype == MEMTYPE_WB, "PDPTE PAT bit 12: index 4 = WB");
    npt_ops.decode(0x100097, 1, &d);
    CHECK(d.memtype == MEMTYPE_UC, "PTE index 6 = UC- (reported UC)");
    npt_ops.decode(0x20000b, 2, &d);
    CHECK(d.present && !d.leaf && d.addr == 0x200000, "PDE without PS is a table pointer");

    static const u8 types[] = { MEMTYPE_UC, MEMTYPE_WT, MEMTYPE_WB };
    for (int level = 1; level <= 3; level++)
        for (u8 perms = 0; perms <= STAGE2_RWX; perms++)
            for (u32 t = 0; t < sizeof(types); t++) {
                u64 hpa = 0x1234ull << 30;
                /* Present implies readable: W or X alone come back with R. */
                u8 want = perms ? perms | STAGE2_R : 0;
                npt_ops.decode(npt_ops.leaf(hpa, level, perms, types[t]), level, &d);
                CHECK(d.leaf && d.addr == hpa && d.perms == want && d.memtype == types[t] && d.present == !!perms,
                      "NPT round trip level %d perms %u type %u", level, perms, types[t]);
            }
}

/* Allocation failure is reported, not crashed on. */
static void test_alloc_failure(void)
{
    struct memmap m = make_map(bochs_ranges, sizeof(bochs_ranges) / sizeof(bochs_ranges[0]));
    struct mtrr_state mt = { .cap = 0 };
    struct pages p = { .count = sizeof(p.page) / sizeof(p.page[0]) };   /* "full": every allocation fails */
    struct stage2 s = { .ops = &ept_ops, .page_sizes = STAGE2_SIZE_2M, .alloc_page = alloc_page, .alloc_ctx = &p };
    CHECK(stage2_build_identity(&s, &m, &mt) == -1, "build without memory");
    struct stage2_walk w;
    CHECK(stage2_walk(&s, 0, &w) == -1, "nothing mapped after a failed build");
}

/*
 * --- (e) demand mapping of holes and of addresses above RAM (stage2_holes.c) ---------------------
 * Bochs' map, 2 MiB and 1 GiB leaves. After stage2_unmap_holes() the PCI hole is not present; a fault
 * at 0xc0100000 maps the 2 MiB block around it (the 1 GiB leaf 3..4 GiB was split when the tail at
 * 0xfffc0000 was typed), with no new table; one at 0x40100000 splits the 1 GiB hole leaf 1..2 GiB
 * once (a table) and maps 2 MiB. Above top (4 GiB) a 1 GiB leaf needs one PDPT per 512 GiB region;
 * the budget of 32 tables ends that, never the pool.
 */
static void test_holes(void)
{
    struct memmap m = make_map(bochs_ranges, sizeof(bochs_ranges) / sizeof(bochs_ranges[0]));
    struct mtrr_state mt = { .cap = 0 };
    struct pages p = { .count = 0 };
    struct stage2 s;
    struct stage2_walk w;
    build(&s, &p, &ept_ops, STAGE2_SIZE_2M | STAGE2_SIZE_1G, &m, &mt);
    CHECK(stage2_unmap_holes(&s, &m) > 0, "holes unmapped");
    CHECK(stage2_walk(&s, 0xc0100000, &w) == 0 && w.perms == 0, "PCI hole not present before the fault");
    u64 tables = s.tables;
    CHECK(stage2_map_hole(&s, &m, 0xc0100000), "hole mapped");
    CHECK(stage2_walk(&s, 0xc0100000, &w) == 0 && w.perms == STAGE2_RWX && w.memtype == MEMTYPE_UC,
          "hole RWX UC: perms %u type %u", w.perms, w.memtype);
    CHECK(w.page_size == MiB(2), "the whole not-present 2 MiB leaf is mapped: %lu bytes", w.page_size);
    CHECK(stage2_walk(&s, 0xc0000000, &w) == 0 && w.perms == STAGE2_RWX, "block start");
    CHECK(stage2_walk(&s, 0xc0200000, &w) == 0 && w.perms == 0, "the next 2 MiB stays unmapped");
    CHECK(s.tables == tables, "no table for a 2 MiB hole leaf: %lu -> %lu", tables, s.tables);
    CHECK(stage2_walk(&s, 0x40100000, &w) == 0 && w.level == 3 && w.perms == 0, "1..2 GiB one 1 GiB hole leaf");
    CHECK(stage2_map_hole(&s, &m, 0x40100000), "1 GiB hole leaf mapped");
    CHECK(stage2_walk(&s, 0x40100000, &w) == 0 && w.level == 2 && w.perms == STAGE2_RWX, "as a 2 MiB leaf");
    CHECK(stage2_walk(&s, 0x40200000, &w) == 0 && w.level == 2 && w.perms == 0, "its neighbour stays unmapped");
    CHECK(s.tables == tables + 1, "one table for the split: %lu -> %lu", tables, s.tables);
    tables = s.tables;
    CHECK(!stage2_map_hole(&s, &m, 0x200000), "RAM is no hole");
    CHECK(stage2_map_hole(&s, &m, 0xc0100000), "a second fault on a mapped hole retries");

    /* Above RAM: a 64-bit BAR at 8 GiB, then one per 512 GiB region until the budget ends. */
    CHECK(stage2_map_hole(&s, &m, GiB(8) + 0x1234), "above top mapped");
    CHECK(s.tables == tables, "8 GiB shares the first PDPT: %lu", s.tables);
    u32 mapped = 0;
    for (u64 region = 1; region < 64; region++)
        mapped += stage2_map_hole(&s, &m, region * GiB(512) + GiB(3));
    CHECK(mapped == 31, "the rest of the budget of 32 tables above RAM: %u regions mapped", mapped);
    CHECK(s.tables == tables + 31, "tables %lu", s.tables);
    /* With the budget spent a 1 GiB hole leaf is mapped whole: 2..3 GiB. */
    CHECK(stage2_map_hole(&s, &m, 0x80100000) && stage2_walk(&s, 0x80100000, &w) == 0 && w.level == 3 &&
              w.perms == STAGE2_RWX, "budget spent: 1 GiB leaf mapped whole");
    free_pages(&p);
}

/*
 * A guest's MTRRs retype the live map (stage2_retype): its variable range makes [64 MiB, 66 MiB) UC,
 * one 2 MiB leaf; a 4 KiB UC range inside the 2 MiB leaf at 80 MiB makes that whole leaf UC (mixed
 * types are not split while the guest runs); a not-present range keeps its entry; the host's MTRRs
 * again give back the built map. Types per SDM Vol. 3A 13.11.4.1 (UC wins over WB).
 */
static void test_retype(const struct stage2_ops *ops)
{
    struct memmap m = make_map(q35_ranges, sizeof(q35_ranges) / sizeof(q35_ranges[0]));
    struct mtrr_state host = q35_mtrrs(), guest = q35_mtrrs();
    struct pages p = { .count = 0 };
    struct stage2 s;
    struct stage2_walk w;
    build(&s, &p, ops, STAGE2_SIZE_2M | STAGE2_SIZE_1G, &m, &host);
    CHECK(stage2_retype(&s, &m, &host) == 0, "%s retype: the host's own MTRRs change nothing", ops->name);
    CHECK(stage2_protect(&s, MiB(96), MiB(2), 0) == 0, "%s retype: protect", ops->name);
    u64 before = 0;
    CHECK(stage2_walk(&s, MiB(96), &w) == 0, "%s retype: walk 96 MiB", ops->name);
    before = w.entry[w.level];

    set_var(&guest, 1, MiB(64), MiB(2), MEMTYPE_UC);
    set_var(&guest, 2, MiB(80) + 0x3000, 0x1000, MEMTYPE_UC);
    set_var(&guest, 3, MiB(96), MiB(2), MEMTYPE_UC);
    u64 n = stage2_retype(&s, &m, &guest);
    CHECK(n == 2, "%s retype: %lu leaves changed, want 2 (64 MiB, 80 MiB)", ops->name, n);
    CHECK(stage2_walk(&s, MiB(64) + 0x1234, &w) == 0 && w.memtype == MEMTYPE_UC && w.level == 2 &&
              w.perms == STAGE2_RWX && w.hpa == MiB(64) + 0x1234,
          "%s retype: 64 MiB is a UC RWX 2M leaf (type %u level %d)", ops->name, w.memtype, w.level);
    CHECK(stage2_walk(&s, MiB(66), &w) == 0 && w.memtype == MEMTYPE_WB, "%s retype: 66 MiB stays WB", ops->name);
    CHECK(stage2_walk(&s, MiB(62), &w) == 0 && w.memtype == MEMTYPE_WB, "%s retype: 62 MiB stays WB", ops->name);
    CHECK(stage2_walk(&s, MiB(80), &w) == 0 && w.memtype == MEMTYPE_UC && w.level == 2,
          "%s retype: the mixed 2M leaf at 80 MiB is UC", ops->name);
    CHECK(stage2_walk(&s, MiB(96), &w) == 0 && w.entry[w.level] == before && w.perms == 0,
          "%s retype: a not-present leaf is untouched", ops->name);
    CHECK(stage2_walk(&s, 0xfee00000, &w) == 0 && w.memtype == MEMTYPE_UC, "%s retype: MMIO stays UC", ops->name);

    n = stage2_retype(&s, &m, &host);
    CHECK(n == 2, "%s retype back: %lu leaves changed, want 2", ops->name, n);
    CHECK(stage2_walk(&s, MiB(64), &w) == 0 && w.memtype == MEMTYPE_WB && stage2_walk(&s, MiB(80), &w) == 0 &&
              w.memtype == MEMTYPE_WB,
          "%s retype back: 64 and 80 MiB are WB again", ops->name);
    free_pages(&p);
}

int main(void)
{
    test_ept_encoding();
    test_npt_encoding();
    test_mtrr();
    test_q35();
    test_bochs();
    test_big();
    test_alloc_failure();
    test_holes();
    test_retype(&ept_ops);
    test_retype(&npt_ops);
    return check_summary();
}
