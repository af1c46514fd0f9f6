/*
 * Physical page pool: every hypervisor allocation (VMXON/VMCS/VMCB regions, stage-2 tables, stacks,
 * rings) comes from here. Pages are carved from RAM the memory map marks usable, minus everything
 * claimed at boot (the image, multiboot data, modules, the low 1 MiB). Allocation never fails
 * silently: exhaustion stops the run with HV_STATUS_POOL_EXHAUSTED.
 */
#ifndef HV_POOL_H
#define HV_POOL_H

#include <hv/types.h>

/* Keep [base, base+length) out of the pool; call before pool_init(). */
void pool_claim(u64 base, u64 length, const char *what);
void pool_init(void);
/* 'pages' zeroed, physically contiguous pages aligned to 'align' bytes (a power of two >= 4 KiB). */
void *pool_alloc(u64 pages, u64 align, const char *what);
/* The same, and listed in the discovery header as immutable: written only before launch (permission
   maps), hashed by the host before and after a run. */
void *pool_alloc_immutable(u64 pages, const char *what);
u64 pool_free_pages(void);
/*
 * Shrink the pool to 'spare_pages' more pages, all inside the extent already in use: from then on
 * the pool's memory is a fixed set of ranges (pool_claims) that can be taken away from a guest.
 */
void pool_seal(u64 spare_pages);

/* Ranges the hypervisor occupies (claims plus pool allocations), for the guest memory map later. */
struct hv_claim {
    u64 base, length;
    const char *what;
};
u32 pool_claims(const struct hv_claim **out);

#endif
