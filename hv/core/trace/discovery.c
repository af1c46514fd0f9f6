/*
 * The discovery header (abi.h struct hv_discovery) at the ELF symbol 'hv_trace' plus the image's slide
 * (core/lib/relocate.c): how host tools find the per-CPU snapshot areas (and later the rings) in guest RAM,
 * by symbol (hvtrace/relocation.py finds the slide from it) or by scanning for the magic.
 */
#include <hv/abi.h>
#include <hv/breaks.h>
#include <hv/discovery.h>
#include <hv/panic.h>
#include <hv/percpu.h>
#include <hv/spinlock.h>
#include <hv/x86.h>

struct hv_discovery hv_trace __attribute__((aligned(64))) = {
    .magic = HV_DISCOVERY_MAGIC,
    .abi_version = HV_ABI_VERSION,
    .header_size = sizeof(struct hv_discovery),
    .snapshot_size = sizeof(struct hv_snapshot),
};

/* GNU build-id note (ELF gABI note: namesz, descsz, type, "GNU\0", then the 20-byte SHA-1). */
extern const u8 __build_id_note[];

/* The ranges no one writes after launch (abi.h HV_IMMUTABLE_MAX): the image, 3 host page-table pieces,
   and per CPU its GDT/TSS/IDT, MSR and I/O permission maps. */
_Static_assert(HV_IMMUTABLE_MAX >= 8 + 3 * HV_MAX_CPUS, "room for every CPU's immutable ranges");
static struct hv_range immutable[HV_IMMUTABLE_MAX];
static spinlock_t immutable_lock;

void discovery_add_immutable(const void *base, u64 length)
{
    spin_lock(&immutable_lock);
    u32 n = hv_trace.immutable_count;
    if (n == HV_IMMUTABLE_MAX)
        hv_fail(HV_STATUS_FAIL, "discovery", "more than %u immutable ranges", HV_IMMUTABLE_MAX);
    immutable[n] = (struct hv_range){ (u64)base, length };
    hv_trace.immutable = (u64)immutable;
    __atomic_store_n(&hv_trace.immutable_count, n + 1, __ATOMIC_RELEASE);
    spin_unlock(&immutable_lock);
}

/* The image's code, read-only data and build-id note: [__image_start, __readonly_end) (boot/linker.ld),
   final once core/relocate.c applied the slide. */
extern const u8 __image_start[], __readonly_end[];

/*
 * The host page tables (boot/entry.S), found from CR3: the PML4, PDPT entries 0-3 and the four page
 * directories they point at (0-4 GiB in 2 MiB pages). PDPT entry 4 is not listed: core/guest_mem.c sets
 * it once, when the hypervisor first reads guest RAM above 4 GiB.
 */
static void add_host_page_tables(void)
{
    const u64 addr_mask = 0x000ffffffffff000ull;   /* SDM Vol. 3A 4.5, Table 4-15 */
    const u64 *pml4 = (const u64 *)(read_cr3() & addr_mask);
    const u64 *pdpt = (const u64 *)(pml4[0] & addr_mask);
    discovery_add_immutable(pml4, PAGE_SIZE);
    discovery_add_immutable(pdpt, 4 * sizeof(u64));
    for (u32 i = 0; i < 4; i++)
        discovery_add_immutable((const void *)(pdpt[i] & addr_mask), PAGE_SIZE);
}

void discovery_init(u32 online)
{
    discovery_add_immutable(__image_start, (u64)(__readonly_end - __image_start));
    add_host_page_tables();
    for (u32 i = 0; i < online; i++) {   /* GDT, TSS and IDT: adjacent, the end of struct percpu */
        const struct percpu *pc = cpus[i];
        discovery_add_immutable(pc->gdt, (u64)((const u8 *)(&pc->idt + 1) - (const u8 *)pc->gdt));
    }
    const u32 *note = (const u32 *)__build_id_note;
    if (note[0] == 4 && note[1] == sizeof(hv_trace.build_id) && note[2] == 3)
        memcpy(hv_trace.build_id, __build_id_note + 16, sizeof(hv_trace.build_id));
    hv_trace.cpu_count = online;
    hv_trace.break_config = (u64)&hv_breaks;
}
