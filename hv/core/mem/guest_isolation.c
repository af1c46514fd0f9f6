/*
 * Isolation of a loaded guest: hypervisor memory (the image and the sealed page pool, which holds
 * every stack, VMCS / VMCB, stage-2 table, ring and snapshot) is taken out of the stage-2 map and
 * reported reserved in the guest's memory map. A guest access to it raises a stage-2 fault that the
 * back end records as a security event (HV_REC_SECURITY) and reflects as #GP(0); it is never mapped.
 */
#include <hv/console.h>
#include <hv/guest.h>
#include <hv/hv_ranges.h>
#include <hv/pool.h>
#include <hv/stage2.h>

/*
 * The image and the page pool's ranges (the pool is sealed: they no longer grow), sorted and merged.
 * More than GUEST_HV_RANGES_MAX pieces: fail closed (the guest is not started), never a partial list.
 */
static bool note_hv_ranges(void)
{
    const struct hv_claim *c;
    u32 n = pool_claims(&c);
    int count = hv_ranges_collect(c, n, guest.hv, GUEST_HV_RANGES_MAX);
    guest.hv_count = count < 0 ? 0 : (u32)count;
    if (count < 0) {
        printk("guest: hypervisor memory is in more than %u ranges: it cannot all be hidden from the guest, "
               "which is not started\n", GUEST_HV_RANGES_MAX);
        return false;
    }
    return true;
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
    if (!note_hv_ranges())
        return false;
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
