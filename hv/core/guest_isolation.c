/*
 * Isolation of a loaded guest: hypervisor memory (the image and the sealed page pool, which holds
 * every stack, VMCS / VMCB, stage-2 table, ring and snapshot) is taken out of the stage-2 map and
 * reported reserved in the guest's memory map. A guest access to it raises a stage-2 fault that the
 * back end records as a security event (HV_REC_SECURITY) and reflects as #GP(0); it is never mapped.
 */
#include <hv/console.h>
#include <hv/guest.h>
#include <hv/pool.h>
#include <hv/stage2.h>

/* The image and the page pool's ranges (the pool is sealed: they no longer grow), sorted. */
static void note_hv_ranges(void)
{
    const struct hv_claim *c;
    u32 n = pool_claims(&c);
    guest.hv_count = 0;
    for (u32 i = 0; i < n && guest.hv_count < GUEST_HV_RANGES_MAX; i++) {
        if (strncmp(c[i].what, "image", 6) && strncmp(c[i].what, "page pool", 10))
            continue;   /* multiboot data and modules belong to the guest once it is loaded */
        u32 at = guest.hv_count++;
        while (at > 0 && guest.hv[at - 1].base > c[i].base) {   /* insertion sort: a handful of ranges */
            guest.hv[at] = guest.hv[at - 1];
            at--;
        }
        guest.hv[at] = (struct mem_range){ c[i].base, c[i].length, MEM_RESERVED };
    }
    /* The pool grows down from the image at the top of RAM (core/relocate.c): adjacent ranges are one. */
    u32 merged = 0;
    for (u32 i = 0; i < guest.hv_count; i++) {
        if (merged && guest.hv[merged - 1].base + guest.hv[merged - 1].length == guest.hv[i].base)
            guest.hv[merged - 1].length += guest.hv[i].length;
        else
            guest.hv[merged++] = guest.hv[i];
    }
    guest.hv_count = merged;
}

bool guest_gpa_is_hv(u64 gpa)
{
    for (u32 i = 0; i < guest.hv_count; i++)
        if (gpa - guest.hv[i].base < guest.hv[i].length)
            return true;
    return false;
}

bool guest_isolate(struct stage2 *s)
{
    note_hv_ranges();
    for (u32 i = 0; i < guest.hv_count; i++) {
        const struct mem_range *r = &guest.hv[i];
        /* Splitting allocates tables from the sealed pool: inside these very ranges. */
        if (stage2_protect(s, r->base, r->length, 0))
            return false;
        printk("guest: hypervisor memory [0x%lx-0x%lx) removed from the %s map\n", r->base, r->base + r->length,
               s->ops->name);
    }
    stage2_print_summary(s);
    return true;
}

void security_event(u32 cpu, const char *vendor, u64 gpa, const char *access, u64 rip)
{
    static u32 reported;
    /* The record of every event carries HV_REC_SECURITY; the console names the first few. */
    if (__atomic_fetch_add(&reported, 1, __ATOMIC_RELAXED) < 16)
        printk("%s: CPU %u: security: guest %s of hypervisor memory at GPA 0x%lx blocked (RIP 0x%lx), #GP(0) "
               "reflected\n", vendor, cpu, access, gpa, rip);
}
