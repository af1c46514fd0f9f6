/*
 * The hypervisor gets out of the guest's way: multiboot loaders put the image at its link address,
 * 1 MiB, where kernels linked at 1 MiB must load and where multiboot mem_upper starts counting. Right
 * after entering long mode (boot/entry.S) the image copies itself to the top of the highest usable RAM
 * range below 4 GiB and runs there; the page pool then grows downwards from it (core/mem/pool.c), so the
 * image and the pool are one reserved range at the top and guests see RAM from 1 MiB up as one range.
 *
 * Mechanism: a fixed link at 1 MiB plus a build-time relocation table (hv/tools/relocs.py, from
 * `ld --emit-relocs`, like Linux's arch/x86/tools/relocs) rather than a static-pie link: the 32-bit
 * multiboot entry and header need absolute 32-bit addresses (R_X86_64_32), which a PIE link refuses.
 * The C is compiled -fpie with hidden visibility, so code addresses are RIP-relative and only the
 * absolute pointers in data (ops tables, the ISR table, the GDT pointer) need the slide added.
 * Physical = virtual stays (the boot identity map covers 0-4 GiB): the slide is a multiple of 2 MiB
 * (HV_SLIDE_ALIGN) so host tools find the image at link address + k * 2 MiB.
 */
#include <hv/multiboot.h>
#include <hv/relocate.h>
#include <hv/console.h>
#include <hv/memmap.h>

extern u8 __image_start[], __image_end[], __hvrelocs_start[];
extern u64 boot_pml4[], boot_pdpt[];

u64 hv_image_slide;
u64 hv_image_top;

#define BOOT_DATA_MAX 40

struct span {
    u64 base, end;
};

static bool overlap(u64 a, u64 ae, u64 b, u64 be)
{
    return a < be && b < ae;
}

static u32 add_span(struct span *s, u32 n, u64 base, u64 len)
{
    if (n < BOOT_DATA_MAX && len)
        s[n++] = (struct span){ base, base + len };
    return n;
}

static u64 str_size(u32 addr)
{
    const char *p = (const char *)(u64)addr;
    u64 n = 0;
    while (p[n])
        n++;
    return n + 1;
}

/* What the loader handed over and the hypervisor still reads: the copy must not land on it. */
static u32 boot_data(const struct multiboot_info *mbi, struct span *s)
{
    u32 n = add_span(s, 0, (u64)mbi, sizeof(*mbi));
    if (mbi->flags & MB_INFO_MMAP)
        n = add_span(s, n, mbi->mmap_addr, mbi->mmap_length);
    if (mbi->flags & MB_INFO_CMDLINE)
        n = add_span(s, n, mbi->cmdline, str_size(mbi->cmdline));
    if (mbi->flags & MB_INFO_MODS) {
        const struct multiboot_module *m = (const void *)(u64)mbi->mods_addr;
        n = add_span(s, n, mbi->mods_addr, (u64)mbi->mods_count * sizeof(*m));
        for (u32 i = 0; i < mbi->mods_count; i++) {
            n = add_span(s, n, m[i].mod_start, m[i].mod_end - m[i].mod_start);
            if (m[i].string)
                n = add_span(s, n, m[i].string, str_size(m[i].string));
        }
    }
    return n;
}

/* The highest base (link address + k * 2 MiB) where [base, top) is usable RAM free of boot data. */
static u64 choose_base(const struct multiboot_info *mbi, u64 size, u64 *top_out)
{
    struct span data[BOOT_DATA_MAX];
    u32 nd = boot_data(mbi, data);
    u64 link = (u64)__image_start, best = 0, floor = ALIGN_UP((u64)__image_end, PAGE_SIZE);
    if (!(mbi->flags & MB_INFO_MMAP))
        return 0;   /* hv_main reports the missing map */
    for (u64 p = mbi->mmap_addr; p + sizeof(struct multiboot_mmap_entry) <= (u64)mbi->mmap_addr + mbi->mmap_length;) {
        const struct multiboot_mmap_entry *e = (const void *)p;
        p += (u64)e->size + sizeof(e->size);
        if (e->type != MEM_USABLE || e->addr >= GiB(4))
            continue;
        u64 lo = e->addr > floor ? e->addr : floor;
        u64 top = ALIGN_DOWN(e->addr + e->len < GiB(4) ? e->addr + e->len : GiB(4), PAGE_SIZE);
        while (top > lo + size) {
            u64 base = ALIGN_DOWN(top - size - link, HV_SLIDE_ALIGN) + link;
            if (base < lo || base <= best)
                break;
            u32 i = 0;
            while (i < nd && !overlap(base, top, data[i].base, data[i].end))
                i++;
            if (i == nd) {
                best = base;
                *top_out = top;
                break;
            }
            top = ALIGN_DOWN(data[i].base, PAGE_SIZE);     /* below what is in the way, and again */
        }
    }
    return best;
}

u64 boot_relocate(u32 mbi_addr)
{
    u64 size = (u64)(__image_end - __image_start), top = 0;
    u64 base = choose_base((const struct multiboot_info *)(u64)mbi_addr, size, &top);
    if (!base) {
        hv_image_top = (u64)__image_end;
        return 0;   /* stays at the link address; relocate_finish says so */
    }
    u64 slide = base - (u64)__image_start;
    u8 *copy = (u8 *)base;
    memcpy(copy, __image_start, size);
    /* The table (count64, count32, offsets from __image_start): add the slide to each absolute field. */
    const u32 *t = (const u32 *)__hvrelocs_start;
    for (u32 i = 0; i < t[0]; i++)
        *(u64 *)(copy + t[2 + i]) += slide;
    for (u32 i = 0; i < t[1]; i++)
        *(u32 *)(copy + t[2 + t[0] + i]) += (u32)slide;
    /* The copy's page tables point at the copy's tables (PML4E / PDPTE address bits, SDM Vol. 3A 4.5). */
    u64 *pml4 = (u64 *)((u64)boot_pml4 + slide), *pdpt = (u64 *)((u64)boot_pdpt + slide);
    pml4[0] += slide;
    for (u32 i = 0; i < 4; i++)
        pdpt[i] += slide;
    *(u64 *)((u64)&hv_image_slide + slide) = slide;
    *(u64 *)((u64)&hv_image_top + slide) = top;
    return slide;
}

void relocate_finish(void)
{
    u64 size = (u64)(__image_end - __image_start);
    if (!hv_image_slide) {
        printk("hvtrace: image at [0x%lx-0x%lx), slide 0x0: no room at the top of RAM, not relocated\n",
               (u64)__image_start, (u64)__image_end);
        return;
    }
    /* Nothing runs from the loader's copy any more (CR3, GDT, stack and code are the new copy's). */
    memset(__image_start - hv_image_slide, 0, size);
    printk("hvtrace: image relocated to [0x%lx-0x%lx), slide 0x%lx, hypervisor region ends at 0x%lx\n",
           (u64)__image_start, (u64)__image_end, hv_image_slide, hv_image_top);
}
