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
 * The bytes at linear address 'linear' as this CPU's guest sees them, in place (NULL where
 * guest_read_linear() would fail, or the page is not cacheable): valid to *avail bytes (the page's
 * end). The translation of the page is cached per CPU and checked against the paging entries it was
 * made from on every call (guest_mem.c): for the instruction bytes of exit after exit at one RIP.
 */
const u8 *guest_code_bytes(const struct guest_paging *p, u64 linear, u32 *avail);

#endif
