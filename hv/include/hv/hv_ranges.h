/*
 * The hypervisor's own memory as a short sorted list of ranges (the image and the sealed page pool's
 * claims, adjacent or overlapping ones merged): what a guest is denied (core/mem/guest_isolation.c). A
 * pure function, so that tests/native can check it with the host compiler.
 */
#ifndef HV_HV_RANGES_H
#define HV_HV_RANGES_H

#include <hv/memmap.h>
#include <hv/pool.h>

/*
 * Fill out[0..max) with the union of the claims named "image" or "page pool", sorted and merged
 * (type MEM_RESERVED). Returns the number of ranges, or -1 if the union needs more than max ranges:
 * the caller must then refuse to isolate (fail closed), never keep a partial list.
 */
int hv_ranges_collect(const struct hv_claim *c, u32 n, struct mem_range *out, u32 max);

#endif
