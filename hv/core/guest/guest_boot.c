/*
 * What a loaded kernel finds at entry: a memory map (the hypervisor's, with hypervisor memory turned
 * into reserved ranges), a flat GDT, and the multiboot information block (Multiboot 0.6.96, 3.3) or
 * Linux's boot_params "zero page" (Documentation/arch/x86/zero-page.rst, boot.rst) with an e820 table.
 * All of it lives in low guest RAM (guest.h GUEST_*), which the guest may reuse once it has read it.
 */
#include <hv/abi.h>
#include <hv/console.h>
#include <hv/guest.h>
#include <hv/multiboot.h>
#include <hv/panic.h>

static void push_range(struct memmap *out, u64 base, u64 end, u32 type)
{
    if (base >= end)
        return;
    if (out->count == MEMMAP_MAX)
        hv_fail(HV_STATUS_GUEST_LOAD, "guest_load", "guest memory map: more than %u ranges", MEMMAP_MAX);
    out->range[out->count++] = (struct mem_range){ base, end - base, type };
    if (type == MEM_USABLE) {
        out->usable_bytes += end - base;
        if (end > out->top_of_ram)
            out->top_of_ram = end;
    }
}

void guest_build_memmap(struct memmap *out)
{
    const struct mem_range *hv = guest.hv;
    u32 nhv = guest.hv_count;
    *out = (struct memmap){ 0 };
    for (u32 i = 0; i < hv_memmap.count; i++) {
        const struct mem_range *r = &hv_memmap.range[i];
        u64 at = r->base, end = r->base + r->length;
        if (r->type == MEM_USABLE) {
            /* hv[] is sorted: cut each hypervisor range out of this usable one, as reserved */
            for (u32 j = 0; j < nhv && at < end; j++) {
                u64 hb = hv[j].base, he = hv[j].base + hv[j].length;
                if (he <= at || hb >= end)
                    continue;
                push_range(out, at, hb, MEM_USABLE);
                push_range(out, hb > at ? hb : at, he < end ? he : end, MEM_RESERVED);
                at = he;
            }
        }
        push_range(out, at, end, r->type);
    }
    printk("guest: memory map (%u ranges, hypervisor memory reserved):\n", out->count);
    for (u32 i = 0; i < out->count; i++)
        printk("  [guest 0x%016lx-0x%016lx] %s\n", out->range[i].base, out->range[i].base + out->range[i].length - 1,
               mem_type_name(out->range[i].type));
}

void guest_write_gdt(void)
{
    /* null, unused, __BOOT_CS: flat 32-bit code, __BOOT_DS: flat data (SDM Vol. 3A 3.4.5) */
    u64 *gdt = (u64 *)GUEST_GDT;
    gdt[0] = 0;
    gdt[1] = 0;
    gdt[GUEST_SEL_CODE / 8] = 0x00cf9a000000ffffull;
    gdt[GUEST_SEL_DATA / 8] = 0x00cf92000000ffffull;
}

static u32 copy_cmdline(const char *cmdline)
{
    char *dst = (char *)GUEST_CMDLINE;
    u32 n = 0;
    while (cmdline[n] && n < GUEST_CMDLINE_MAX - 1) {
        dst[n] = cmdline[n];
        n++;
    }
    dst[n] = 0;
    return GUEST_CMDLINE;
}

void guest_write_multiboot_info(const struct multiboot_module *mods, const char (*strings)[GUEST_CMDLINE_MAX], u32 count,
                                const char *cmdline)
{
    struct multiboot_info *mbi = (struct multiboot_info *)GUEST_MBI;
    memset(mbi, 0, GUEST_BOOT_DATA_END - GUEST_MBI);
    mbi->flags = MB_INFO_MEMORY | MB_INFO_CMDLINE | MB_INFO_MMAP | MB_INFO_MODS;
    mbi->cmdline = copy_cmdline(cmdline);
    /* mem_lower / mem_upper: KiB of RAM from 0 and from 1 MiB (up to the first hole). */
    for (u32 i = 0; i < guest.map.count; i++) {
        const struct mem_range *r = &guest.map.range[i];
        if (r->type == MEM_USABLE && r->base == 0)
            mbi->mem_lower = (u32)((r->length < KiB(640) ? r->length : KiB(640)) >> 10);
        if (r->type == MEM_USABLE && r->base <= MiB(1) && r->base + r->length > MiB(1))
            mbi->mem_upper = (u32)((r->base + r->length - MiB(1)) >> 10);
    }
    struct multiboot_mmap_entry *e = (struct multiboot_mmap_entry *)(mbi + 1);
    mbi->mmap_addr = (u32)(u64)e;
    for (u32 i = 0; i < guest.map.count; i++, e++)
        *e = (struct multiboot_mmap_entry){ .size = sizeof(*e) - 4, .addr = guest.map.range[i].base,
                                            .len = guest.map.range[i].length, .type = guest.map.range[i].type };
    mbi->mmap_length = (u32)((u64)e - mbi->mmap_addr);
    /* The modules after the kernel become the guest's (same memory; strings copied after the list). */
    struct multiboot_module *out = (struct multiboot_module *)e;
    char *str = (char *)(out + count);
    mbi->mods_addr = (u32)(u64)out;
    mbi->mods_count = count;
    for (u32 i = 0; i < count; i++) {
        out[i] = mods[i];
        out[i].string = (u32)(u64)str;
        u32 n = (u32)strlen(strings[i]);
        if ((u64)str + n + 1 > GUEST_BOOT_DATA_END)
            hv_fail(HV_STATUS_GUEST_LOAD, "guest_load", "guest module strings do not fit the boot data area");
        memcpy(str, strings[i], n + 1);
        str += n + 1;
    }
}

/* boot_params offsets (zero-page.rst) */
#define BP_E820_ENTRIES 0x1e8
#define BP_SETUP_HEADER 0x1f1
#define BP_TYPE_OF_LOADER 0x210
#define BP_CODE32_START 0x214
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_CMD_LINE_PTR 0x228
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128

void guest_write_boot_params(const u8 *setup, u32 setup_len, const char *cmdline, u64 kernel_base)
{
    u8 *bp = (u8 *)GUEST_BOOT_PARAMS;
    memset(bp, 0, 4096);
    memcpy(bp + BP_SETUP_HEADER, setup, setup_len);
    bp[BP_TYPE_OF_LOADER] = 0xff;      /* "undefined" boot loader (boot.rst) */
    *(u32 *)(bp + BP_CODE32_START) = (u32)kernel_base;
    *(u32 *)(bp + BP_RAMDISK_IMAGE) = (u32)guest.initrd_base;
    *(u32 *)(bp + BP_RAMDISK_SIZE) = (u32)guest.initrd_len;
    *(u32 *)(bp + BP_CMD_LINE_PTR) = copy_cmdline(cmdline);
    u32 n = guest.map.count < BP_E820_MAX ? guest.map.count : BP_E820_MAX;
    for (u32 i = 0; i < n; i++) {
        u8 *e = bp + BP_E820_TABLE + 20 * i;   /* struct boot_e820_entry: addr, size (u64), type (u32), packed */
        *(u64 *)e = guest.map.range[i].base;
        *(u64 *)(e + 8) = guest.map.range[i].length;
        *(u32 *)(e + 16) = guest.map.range[i].type;
    }
    bp[BP_E820_ENTRIES] = (u8)n;
}
