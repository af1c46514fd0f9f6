/*
 * Stage-2 identity map (the seed's EPT identity map, vendor-neutral, docs/walkthrough.md step 3; see stage2.h for the contract).
 *
 * The builder never scans page by page (the seed's O(N^2) fault). It descends from the root in address
 * order and asks, per block, whether the block has one memory type: if so (and the CPU supports that
 * leaf size) it becomes one leaf, else a table that is filled the same way. A block's type comes from
 * the RAM runs inside it (a cursor that only moves forward, as blocks are visited in address order)
 * and from mtrr_type_of_range() on those runs, so the work is O(ranges + entries written).
 */
#include <hv/console.h>
#include <hv/stage2.h>

#define ENTRIES 512

static u64 level_size(int level)
{
    return 1ull << (12 + 9 * (level - 1));
}

static u32 level_index(u64 gpa, int level)
{
    return (u32)(gpa >> (12 + 9 * (level - 1))) & (ENTRIES - 1);
}

static u64 *table_at(u64 addr)
{
    return (u64 *)(uintptr_t)addr;
}

/* One aligned 64-bit store: a concurrent hardware walk sees the old entry or the new one. */
static void set_entry(u64 *e, u64 v)
{
    __atomic_store_n(e, v, __ATOMIC_RELEASE);
}

static u64 *new_table(struct stage2 *s)
{
    u64 *t = s->alloc_page(s->alloc_ctx);
    if (t)
        s->tables++;
    return t;
}

/* Types the OS owns as memory; they take the MTRR type. Everything else is device or firmware: UC. */
static bool is_ram(u32 type)
{
    return type == MEM_USABLE || type == MEM_ACPI_RECLAIM || type == MEM_ACPI_NVS;
}

struct builder {
    struct stage2 *s;
    const struct mtrr_state *mt;
    struct { u64 base, end; } run[MEMMAP_MAX];  /* maximal RAM runs, whole pages, ascending */
    u32 runs;
    u32 cursor;                                 /* first run that may reach the current block */
};

static void add_run(struct builder *b, u64 base, u64 end)
{
    base = ALIGN_UP(base, PAGE_SIZE);
    end = ALIGN_DOWN(end, PAGE_SIZE);
    if (base < end) {
        b->run[b->runs].base = base;
        b->run[b->runs++].end = end;
    }
}

/*
 * Merge adjacent RAM ranges (sorted and disjoint, as memmap_init() leaves them), then round each run
 * inward to whole pages: a page holding any non-RAM byte is not RAM (Linux trims E820 RAM the same
 * way), so e.g. the EBDA page of QEMU's map is UC.
 */
static void collect_runs(struct builder *b, const struct memmap *m)
{
    u64 base = 0, end = 0;          /* the open run; none while end == 0 */
    for (u32 i = 0; i < m->count; i++) {
        const struct mem_range *r = &m->range[i];
        if (!is_ram(r->type))
            continue;
        if (end && r->base == end) {
            end += r->length;
            continue;
        }
        add_run(b, base, end);
        base = r->base;
        end = r->base + r->length;
    }
    add_run(b, base, end);
}

/* Adds one piece's type to a block: the first sets it, later ones must agree. */
static bool merge(bool *have, u8 *type, u8 t)
{
    if (!*have) {
        *have = true;
        *type = t;
        return true;
    }
    return *type == t;
}

/*
 * Type of the block [base, end): returns whether it is uniform; *type is the type at base either way.
 * Called with non-decreasing base only (the cursor never moves back).
 */
static bool block_type(struct builder *b, u64 base, u64 end, u8 *type)
{
    while (b->cursor < b->runs && b->run[b->cursor].end <= base)
        b->cursor++;
    bool have = false;          /* *type is set by the first piece */
    u64 pos = base;
    *type = MEMTYPE_UC;
    for (u32 i = b->cursor; i < b->runs && b->run[i].base < end; i++) {
        u64 rb = b->run[i].base > base ? b->run[i].base : base;
        u64 re = b->run[i].end < end ? b->run[i].end : end;
        if (rb > pos && !merge(&have, type, MEMTYPE_UC))
            return false;
        /* RAM takes the MTRR type; with MTRRs off it is still RAM: WB (the hardware would say UC). */
        bool uniform = true;
        u8 t = mtrr_enabled(b->mt) ? mtrr_type_of_range(b->mt, rb, re - rb, &uniform) : MEMTYPE_WB;
        if (!merge(&have, type, t) || !uniform)
            return false;
        pos = re;
    }
    return pos == end || merge(&have, type, MEMTYPE_UC);
}

/* Map [base, end) into 'table' at 'level'. Level 1 blocks are always uniform: 4 KiB is the granule. */
static int fill(struct builder *b, u64 *table, int level, u64 base, u64 end)
{
    struct stage2 *s = b->s;
    u64 size = level_size(level);
    bool large_ok = s->page_sizes & (1u << level) & (STAGE2_SIZE_2M | STAGE2_SIZE_1G);
    for (u64 a = base; a < end; a += size) {
        u8 type;
        if (level == 1 || large_ok) {
            bool uniform = block_type(b, a, a + size, &type);
            if (level == 1 || uniform) {
                table[level_index(a, level)] = s->ops->leaf(a, level, STAGE2_RWX, type);
                s->leaves[level]++;
                continue;
            }
        }
        u64 *sub = new_table(s);
        if (!sub)
            return -1;
        table[level_index(a, level)] = s->ops->table((u64)(uintptr_t)sub);
        if (fill(b, sub, level - 1, a, a + size < end ? a + size : end) < 0)
            return -1;
    }
    return 0;
}

int stage2_build_identity(struct stage2 *s, const struct memmap *m, const struct mtrr_state *mt)
{
    struct builder b = { .s = s, .mt = mt };
    collect_runs(&b, m);
    u64 top = GiB(4);
    for (u32 i = 0; i < m->count; i++)
        if (m->range[i].base + m->range[i].length > top)
            top = m->range[i].base + m->range[i].length;
    s->top = ALIGN_UP(top, GiB(1));
    for (int l = 0; l < STAGE2_LEVELS; l++)
        s->leaves[l] = 0;
    s->tables = 0;
    /* Four levels translate 48 bits (SDM Vol. 3C 29.3.2); the memory map never reaches that far. */
    if (s->top > (1ull << 48))
        return -1;
    s->root = new_table(s);
    if (!s->root)
        return -1;
    return fill(&b, s->root, STAGE2_LEVELS, 0, s->top);
}

/*
 * Retype the present leaves under 'table' (ascending addresses, as block_type() needs). A leaf whose
 * range mixes types becomes UC, the strongest, instead of being split: the pool is sealed while the
 * guest runs. A CAS per entry: a concurrent writer's entry (a hole mapping, an APIC-page remap) wins.
 */
static u64 retype(struct builder *b, u64 *table, int level, u64 base)
{
    struct stage2 *s = b->s;
    u64 size = level_size(level), changed = 0;
    for (u32 i = 0; i < 512 && base + i * size < s->top; i++) {
        u64 a = base + i * size, old = __atomic_load_n(&table[i], __ATOMIC_RELAXED);
        struct stage2_pte pte;
        s->ops->decode(old, level, &pte);
        if (!pte.leaf) {
            if (pte.present)
                changed += retype(b, table_at(pte.addr), level - 1, a);
            continue;
        }
        if (!pte.perms)
            continue;       /* not present (isolated, a hole): no access, no type to keep right */
        u8 type;
        if (!block_type(b, a, a + size, &type))
            type = MEMTYPE_UC;
        if (type == pte.memtype)
            continue;
        u64 new = s->ops->leaf(pte.addr, level, pte.perms, type);
        changed += __atomic_compare_exchange_n(&table[i], &old, new, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    }
    return changed;
}

u64 stage2_retype(struct stage2 *s, const struct memmap *m, const struct mtrr_state *mt)
{
    struct builder b = { .s = s, .mt = mt };
    collect_runs(&b, m);
    return s->root ? retype(&b, s->root, STAGE2_LEVELS, 0) : 0;
}

/* The leaf covering gpa: its entry, level and decoded form; raw[] gets every entry read (may be NULL). */
static u64 *find_leaf(const struct stage2 *s, u64 gpa, u64 *raw, int *level, struct stage2_pte *pte)
{
    if (!s->root || gpa >= s->top)
        return NULL;
    u64 *table = s->root;
    for (int l = STAGE2_LEVELS; l >= 1; l--) {
        u64 *e = &table[level_index(gpa, l)];
        if (raw)
            raw[l] = *e;
        s->ops->decode(*e, l, pte);
        if (pte->leaf) {
            *level = l;
            return e;
        }
        if (!pte->present)
            return NULL;
        table = table_at(pte->addr);
    }
    return NULL;
}

/* Replace a leaf at 'level' with a table of 512 leaves one level down, same addresses, type and perms. */
static int split_leaf(struct stage2 *s, u64 *e, int level, const struct stage2_pte *pte)
{
    u64 *sub = new_table(s);
    if (!sub)
        return -1;
    u64 size = level_size(level - 1);
    for (u32 i = 0; i < ENTRIES; i++)
        sub[i] = s->ops->leaf(pte->addr + i * size, level - 1, pte->perms, pte->memtype);
    set_entry(e, s->ops->table((u64)(uintptr_t)sub));
    s->leaves[level]--;
    s->leaves[level - 1] += ENTRIES;
    return 0;
}

int stage2_split(struct stage2 *s, u64 gpa, int to_level)
{
    if (to_level < 1 || to_level > 3)
        return -1;
    for (;;) {
        int level;
        struct stage2_pte pte;
        u64 *e = find_leaf(s, gpa, NULL, &level, &pte);
        if (!e)
            return -1;
        if (level <= to_level)
            return 0;
        if (split_leaf(s, e, level, &pte) < 0)
            return -1;
    }
}

int stage2_protect(struct stage2 *s, u64 gpa, u64 len, u8 perms)
{
    u64 end = gpa + len;
    if (((gpa | len) & (PAGE_SIZE - 1)) || end < gpa || end > s->top || (perms & ~STAGE2_RWX) ||
        ((perms & STAGE2_W) && !(perms & STAGE2_R)))
        return -1;
    for (u64 a = gpa; a < end;) {
        int level;
        struct stage2_pte pte;
        u64 *e = find_leaf(s, a, NULL, &level, &pte);
        if (!e)
            return -1;
        u64 size = level_size(level), lb = ALIGN_DOWN(a, size);
        if (pte.perms != perms) {
            /* A leaf reaching outside the range is split, one level per pass, until it fits. */
            if (lb < a || lb + size > end) {
                if (split_leaf(s, e, level, &pte) < 0)
                    return -1;
                continue;
            }
            set_entry(e, s->ops->leaf(pte.addr, level, perms, pte.memtype));
        }
        a = lb + size;
    }
    return 0;
}

int stage2_walk(const struct stage2 *s, u64 gpa, struct stage2_walk *out)
{
    struct stage2_pte pte;
    int level;
    for (int l = 0; l <= STAGE2_LEVELS; l++)
        out->entry[l] = 0;
    if (!find_leaf(s, gpa, out->entry, &level, &pte))
        return -1;
    out->level = level;
    out->page_size = level_size(level);
    out->hpa = pte.addr + (gpa & (out->page_size - 1));
    out->perms = pte.perms;
    out->memtype = pte.memtype;
    return 0;
}

void stage2_print_summary(const struct stage2 *s)
{
    printk("stage-2: %lu 1G, %lu 2M, %lu 4K leaves, %lu tables\n", s->leaves[3], s->leaves[2], s->leaves[1],
           s->tables);
}

int stage2_map_above(struct stage2 *s, u64 gpa, u32 *tables_left)
{
    if (!s->root || gpa < s->top || gpa >= (1ull << 48))
        return -1;
    u64 *table = s->root;
    for (int l = STAGE2_LEVELS; l >= 1; l--) {
        u64 *e = &table[level_index(gpa, l)];
        struct stage2_pte pte;
        s->ops->decode(*e, l, &pte);
        if (pte.leaf && pte.present)
            return 0;                   /* mapped meanwhile */
        if (pte.present) {
            table = table_at(pte.addr);
            continue;
        }
        /* The largest leaf the CPU has: above RAM nothing else lives in the block (UC, like holes). */
        if (l == 1 || (l <= 3 && (s->page_sizes & (1u << l)))) {
            set_entry(e, s->ops->leaf(ALIGN_DOWN(gpa, level_size(l)), l, STAGE2_RWX, MEMTYPE_UC));
            s->leaves[l]++;
            return 0;
        }
        if (!*tables_left)
            return -1;
        u64 *sub = new_table(s);
        if (!sub)
            return -1;
        (*tables_left)--;
        set_entry(e, s->ops->table((u64)(uintptr_t)sub));
        table = sub;
    }
    return -1;
}

int stage2_remap(struct stage2 *s, u64 gpa, u64 hpa, u8 perms)
{
    int level;
    struct stage2_pte pte;
    u64 *e = find_leaf(s, gpa, NULL, &level, &pte);
    if (!e || level != 1 || (hpa & (PAGE_SIZE - 1)))
        return -1;
    set_entry(e, s->ops->leaf(hpa, 1, perms, pte.memtype));
    return 0;
}
