/*
 * Memory map from multiboot (the seed's GetE820FromRegistry, docs/walkthrough.md step 2). The loader's E820-style list is copied,
 * sorted by base and checked; it is the single source for the page pool and, later, the stage-2
 * builder. Without a memory map (flag bit 6) the run stops: mem_lower/mem_upper cannot describe holes.
 */
#include <hv/abi.h>
#include <hv/console.h>
#include <hv/memmap.h>
#include <hv/multiboot.h>
#include <hv/panic.h>

struct memmap hv_memmap;

const char *mem_type_name(u32 type)
{
    switch (type) {
    case MEM_USABLE: return "usable";
    case MEM_RESERVED: return "reserved";
    case MEM_ACPI_RECLAIM: return "ACPI data";
    case MEM_ACPI_NVS: return "ACPI NVS";
    case MEM_BAD: return "unusable";
    default: return "unknown";
    }
}

static void sort_ranges(struct memmap *m)
{
    for (u32 i = 1; i < m->count; i++) {
        struct mem_range r = m->range[i];
        u32 j = i;
        for (; j > 0 && m->range[j - 1].base > r.base; j--)
            m->range[j] = m->range[j - 1];
        m->range[j] = r;
    }
}

void memmap_init(const struct multiboot_info *mbi)
{
    if (!(mbi->flags & MB_INFO_MMAP))
        hv_fail(HV_STATUS_BAD_BOOTINFO, "bad_bootinfo", "the boot loader passed no memory map (multiboot flags=0x%x)",
                mbi->flags);
    struct memmap *m = &hv_memmap;
    u64 p = mbi->mmap_addr, end = (u64)mbi->mmap_addr + mbi->mmap_length;
    while (p + sizeof(struct multiboot_mmap_entry) <= end) {
        const struct multiboot_mmap_entry *e = (const void *)p;
        if (e->len) {
            if (m->count == MEMMAP_MAX)
                hv_fail(HV_STATUS_BAD_BOOTINFO, "bad_bootinfo", "memory map has more than %u ranges", MEMMAP_MAX);
            m->range[m->count++] = (struct mem_range){ e->addr, e->len, e->type };
        }
        p += (u64)e->size + sizeof(e->size);
    }
    if (!m->count)
        hv_fail(HV_STATUS_BAD_BOOTINFO, "bad_bootinfo", "the memory map is empty");
    sort_ranges(m);
    for (u32 i = 0; i < m->count; i++) {
        const struct mem_range *r = &m->range[i];
        if (i && r->base < m->range[i - 1].base + m->range[i - 1].length)
            hv_fail(HV_STATUS_BAD_BOOTINFO, "bad_bootinfo", "memory map ranges overlap at 0x%lx", r->base);
        if (r->type == MEM_USABLE) {
            m->usable_bytes += r->length;
            m->top_of_ram = r->base + r->length;
        }
    }
}

void memmap_print(void)
{
    const struct memmap *m = &hv_memmap;
    printk("memory map (%u ranges):\n", m->count);
    for (u32 i = 0; i < m->count; i++) {
        const struct mem_range *r = &m->range[i];
        printk("  [mem 0x%016lx-0x%016lx] %-9s (%lu KiB)\n", r->base, r->base + r->length - 1,
               mem_type_name(r->type), r->length >> 10);
    }
    printk("total RAM: %lu MiB usable (%lu KiB), top of RAM 0x%lx\n", m->usable_bytes >> 20, m->usable_bytes >> 10,
           m->top_of_ram);
}
