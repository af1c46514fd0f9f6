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
struct code_cache {
    const u8 *bytes;                    /* the page, in the identity map; NULL: nothing cached */
    u64 page;                           /* its linear address */
    struct guest_paging key;            /* the registers of the walk, compared in full */
    u32 wide, narrow;                   /* entries of 8 bytes (PAE, 4/5-level) and 4 bytes (32-bit) */
    const volatile u64 *e64[CODE_WALK_MAX];
    u64 v64[CODE_WALK_MAX];
    const volatile u32 *e32[CODE_WALK_MAX];
    u32 v32[CODE_WALK_MAX];
};
extern struct code_cache guest_code_cache[];

/*
 * A new walk into 'c' for the page at 'page' under those paging registers: the page's bytes, or NULL
 * where it cannot be cached. By value, so that the caller builds no struct on the usual path.
 */
const u8 *guest_code_walk(struct code_cache *c, u64 cr0, u64 cr3, u64 cr4, u64 efer, u64 page);

static inline bool code_cache_holds(const struct code_cache *c, const struct guest_paging *p, u64 page)
{
    if (!c->bytes || c->page != page || c->key.cr3 != p->cr3 || c->key.cr0 != p->cr0 ||
        c->key.cr4 != p->cr4 || c->key.efer != p->efer)
        return false;
    for (u32 i = 0; i < c->wide; i++)
        if (*c->e64[i] != c->v64[i])
            return false;
    for (u32 i = 0; i < c->narrow; i++)
        if (*c->e32[i] != c->v32[i])
            return false;
    return true;
}

/*
 * The bytes at linear address 'linear' as CPU 'cpu''s guest sees them, in place (NULL where
 * guest_read_linear() would fail, or the page is not cacheable): valid to *avail bytes (the page's
 * end). For the instruction bytes of exit after exit at one RIP.
 */
static inline const u8 *guest_code_bytes(const struct guest_paging *p, u64 linear, u32 cpu, u32 *avail)
{
    struct code_cache *c = &guest_code_cache[cpu];
    u64 page = linear & ~(u64)(PAGE_SIZE - 1);
    const u8 *bytes = code_cache_holds(c, p, page) ? c->bytes : guest_code_walk(c, p->cr0, p->cr3, p->cr4, p->efer, page);
    *avail = PAGE_SIZE - (u32)(linear & (PAGE_SIZE - 1));
    return bytes ? bytes + (linear & (PAGE_SIZE - 1)) : 0;
}

#endif
