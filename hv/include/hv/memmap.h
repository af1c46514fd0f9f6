/*
 * The one physical memory map of the hypervisor (the seed's GetE820FromRegistry, docs/walkthrough.md step 2): taken from the
 * multiboot memory map at boot, sorted, with E820 types. Everything else (page pool, stage-2 builder,
 * guest memory maps) derives from it.
 */
#ifndef HV_MEMMAP_H
#define HV_MEMMAP_H

#include <hv/types.h>

#define MEMMAP_MAX 64

/* ACPI / E820 address range types (ACPI 6.4, table 15.1). */
enum mem_type {
    MEM_USABLE = 1,
    MEM_RESERVED = 2,
    MEM_ACPI_RECLAIM = 3,
    MEM_ACPI_NVS = 4,
    MEM_BAD = 5,
};

struct mem_range {
    u64 base;
    u64 length;
    u32 type;
};

struct memmap {
    u32 count;
    struct mem_range range[MEMMAP_MAX];
    u64 usable_bytes;   /* sum of MEM_USABLE lengths */
    u64 top_of_ram;     /* end of the highest MEM_USABLE range */
};

extern struct memmap hv_memmap;

struct multiboot_info;
void memmap_init(const struct multiboot_info *mbi);
void memmap_print(void);
const char *mem_type_name(u32 type);

#endif
