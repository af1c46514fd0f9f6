/*
 * Reading guest memory by linear address from the hypervisor: a software walk of the guest's own page
 * tables (SDM Vol. 3A 4.3 32-bit, 4.4 PAE, 4.5 4/5-level paging), then guest-physical = host-physical
 * (the stage-2 map is the identity). Used where the CPU gives no help, e.g. the length of an exiting
 * instruction without next-RIP saving. Hypervisor memory and addresses beyond RAM are never read. RAM
 * above the host's 4 GiB identity map (boot/entry.S) is read through a per-CPU 2 MiB window (guest_mem.c).
 */
#ifndef HV_GUEST_MEM_H
#define HV_GUEST_MEM_H

#include <hv/types.h>

struct guest_paging {
    u64 cr0, cr3, cr4, efer;
};

/* Copy len bytes at linear address 'linear'; false if a page is not present or not guest RAM. */
bool guest_read_linear(const struct guest_paging *p, u64 linear, void *out, u32 len);
/* Copy len bytes to linear address 'linear' (guest RAM only: never hypervisor memory or MMIO). */
bool guest_write_linear(const struct guest_paging *p, u64 linear, const void *in, u32 len);
/* Linear -> guest-physical through the guest's paging; false if not present (no permission checks). */
bool guest_translate(const struct guest_paging *p, u64 linear, u64 *gpa);
/* Copy len bytes from / to guest RAM at 'gpa' (usable or ACPI RAM, never hypervisor memory); false if
 * any byte is outside it. */
bool guest_read_phys(u64 gpa, void *out, u32 len);
bool guest_write_phys(u64 gpa, const void *in, u32 len);
/*
 * The code page of each CPU's last exit, translated once and reused while the paging registers are
 * the same and every paging-structure entry the walk read still holds the value it read: then a new
 * walk would read the same entries and end at the same page, so the bytes are exactly what
 * guest_read_linear() would give (a guest that remaps the page, switches CR3 or changes paging mode
 * gets a new walk). Cached only when the page is guest RAM in full and it and its entries lie in the
 * identity map. In this header so that the check inlines into an exit handler (issue 18); filled by
 * guest_code_walk() (guest_mem.c).
 */
#define CODE_WALK_MAX 5
#define CODE_WIDE_CHECKED 4                 /* wide entries always compared (unused: code_entry_unused) */
struct code_entry64 {
    const volatile u64 *at;
    u64 value;
};
struct code_entry32 {
    const volatile u32 *at;
    u32 value;
};
struct __attribute__((aligned(256))) code_cache {     /* a power of two: one shift indexes the array */
    const u8 *bytes;                    /* the page, in the identity map */
    u64 page;                           /* its linear address; 1 (never a page address): nothing cached */
    struct guest_paging key;            /* the registers of the walk, compared in full */
    u32 wide, narrow;                   /* entries of 8 bytes (PAE, 4/5-level) and 4 bytes (32-bit) */
    bool more;                          /* entries beyond the CODE_WIDE_CHECKED fixed ones */
    struct code_entry64 e64[CODE_WALK_MAX];
    struct code_entry32 e32[CODE_WALK_MAX];
};
extern struct code_cache guest_code_cache[];
/* What the unused slots of e64[0 .. CODE_WIDE_CHECKED) point to: 0, and their value is 0. */
extern const volatile u64 code_entry_unused;

/*
 * A new walk into 'c' for the page at 'page' under those paging registers: the page's bytes, or NULL
 * where it cannot be cached. By value, so that the caller builds no struct on the usual path.
 */
const u8 *guest_code_walk(struct code_cache *c, u64 cr0, u64 cr3, u64 cr4, u64 efer, u64 page);

/*
 * Every entry the walk read still holds its value. The usual walks read at most four 8-byte entries
 * (PAE, 4-level): four fixed compares, no loop (issue 18: on every exit without next-RIP saving).
 */
static inline bool code_cache_holds(const struct code_cache *c, const struct guest_paging *p, u64 page)
{
    if (c->page != page || c->key.cr3 != p->cr3 || c->key.cr0 != p->cr0 || c->key.cr4 != p->cr4 ||
        c->key.efer != p->efer)
        return false;
    _Static_assert(CODE_WIDE_CHECKED == 4, "four fixed compares");
    if (*c->e64[0].at != c->e64[0].value || *c->e64[1].at != c->e64[1].value ||
        *c->e64[2].at != c->e64[2].value || *c->e64[3].at != c->e64[3].value)
        return false;
    if (__builtin_expect(c->more, 0)) {
        for (u32 i = CODE_WIDE_CHECKED; i < c->wide; i++)
            if (*c->e64[i].at != c->e64[i].value)
                return false;
        for (u32 i = 0; i < c->narrow; i++)
            if (*c->e32[i].at != c->e32[i].value)
                return false;
    }
    return true;
}

/*
 * The bytes at linear address 'linear' as CPU 'cpu''s guest sees them, in place, where its cached
 * translation holds (*bytes, valid to the page's end; true), else false: no walk. For a fast path.
 */
static inline bool guest_code_cached(const struct guest_paging *p, u64 linear, u32 cpu, const u8 **bytes)
{
    const struct code_cache *c = &guest_code_cache[cpu];
    if (!code_cache_holds(c, p, linear & ~(u64)(PAGE_SIZE - 1)))
        return false;
    *bytes = c->bytes + (linear & (PAGE_SIZE - 1));
    return true;
}

/*
 * The same, walking the guest's paging into the cache where it does not hold (NULL where
 * guest_read_linear() would fail, or the page is not cacheable): valid to *avail bytes (the page's
 * end). For the instruction bytes of exit after exit at one RIP.
 */
static inline const u8 *guest_code_bytes(const struct guest_paging *p, u64 linear, u32 cpu, u32 *avail)
{
    *avail = PAGE_SIZE - (u32)(linear & (PAGE_SIZE - 1));
    const u8 *b;
    if (guest_code_cached(p, linear, cpu, &b))
        return b;
    b = guest_code_walk(&guest_code_cache[cpu], p->cr0, p->cr3, p->cr4, p->efer, linear & ~(u64)(PAGE_SIZE - 1));
    return b ? b + (linear & (PAGE_SIZE - 1)) : 0;
}

#endif
