/*
 * The guest loader: the first multiboot module is the kernel, its string "file args" gives the
 * kernel's command line, a second module is the Linux initrd (or the first module a multiboot
 * kernel is handed). Two formats:
 *   - multiboot v1 (Multiboot Specification 0.6.96, 3.1): the header in the first 8 KiB; ELF32 /
 *     ELF64 program headers (PT_LOAD at p_paddr, BSS zeroed) or the a.out kludge addresses;
 *   - Linux bzImage (Documentation/arch/x86/boot.rst): a relocatable kernel (protocol >= 2.10) is
 *     copied to the first kernel_alignment-aligned address >= pref_address where init_size bytes of
 *     usable guest RAM are free; a non-relocatable one (protocol >= 2.00, loaded high, e.g.
 *     memtest86+) at its code32_start (1 MiB), as the protocol requires; entered at its 32-bit entry.
 * Every byte is placed in RAM the guest's memory map offers: never in hypervisor memory. Loaders put
 * the modules right after the hypervisor's loader copy at 1 MiB, where kernels linked at 1 MiB go: a
 * first pass only plans where the kernel goes, every module in the way is moved high (just below the
 * hypervisor region, still guest RAM, and the guest is told the new address), then the kernel loads.
 */
#include <hv/abi.h>
#include <hv/acpi.h>
#include <hv/console.h>
#include <hv/guest.h>
#include <hv/multiboot.h>
#include <hv/panic.h>
#include <hv/pool.h>

struct guest guest;

#define MB_HEADER_MAGIC 0x1BADB002
#define MB_HEADER_AOUT_KLUDGE (1u << 16)
#define MB_SEARCH_BYTES 8192

#define ELF_PT_LOAD 1

#define BZ_SETUP_SECTS  0x1f1
#define BZ_LOADFLAGS    0x211
#define BZ_LOADED_HIGH  0x01
#define BZ_CODE32_START 0x214
#define BZ_BOOT_FLAG    0x1fe
#define BZ_JUMP         0x200
#define BZ_HEADER_MAGIC 0x202
#define BZ_VERSION      0x206
#define BZ_KERNEL_ALIGN 0x230
#define BZ_RELOCATABLE  0x234
#define BZ_PREF_ADDRESS 0x258
#define BZ_INIT_SIZE    0x260

__noreturn static void load_fail(const char *why, u64 value)
{
    hv_fail(HV_STATUS_GUEST_LOAD, "guest_load", "guest %s: %s (0x%lx)", guest.name ? guest.name : "?", why, value);
}

static u32 rd32(const u8 *p)
{
    return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static u64 rd64(const u8 *p)
{
    return rd32(p) | (u64)rd32(p + 4) << 32;
}

static u16 rd16(const u8 *p)
{
    return (u16)(p[0] | p[1] << 8);
}

static bool overlaps(u64 a, u64 alen, u64 b, u64 blen)
{
    return alen && blen && a < b + blen && b < a + alen;
}

/*
 * The loader's module list and strings, copied before anything is written: loaders keep them in low
 * memory (GRUB at 0x10000) where the guest's boot data goes. Modules still to be read while loading.
 */
static struct multiboot_module mods[GUEST_MODS_MAX];
static char mod_strings[GUEST_MODS_MAX][GUEST_CMDLINE_MAX];
static u32 mods_count;

/* Is [base, base+len) inside one usable range of the guest's map and clear of every module? */
static bool placeable(u64 base, u64 len)
{
    bool in_ram = false;
    for (u32 i = 0; i < guest.map.count && !in_ram; i++) {
        const struct mem_range *r = &guest.map.range[i];
        in_ram = r->type == MEM_USABLE && base >= r->base && base + len <= r->base + r->length;
    }
    for (u32 i = 0; in_ram && i < mods_count; i++)
        if (overlaps(base, len, mods[i].mod_start, mods[i].mod_end - mods[i].mod_start))
            return false;
    return in_ram;
}

/* The planning pass records where the kernel goes; nothing is written. */
#define PLAN_MAX 16
static bool planning;
static struct { u64 base, len; } plan[PLAN_MAX];
static u32 plan_count;

static bool in_guest_ram(u64 base, u64 len)
{
    for (u32 i = 0; i < guest.map.count; i++) {
        const struct mem_range *r = &guest.map.range[i];
        if (r->type == MEM_USABLE && base >= r->base && base + len <= r->base + r->length)
            return true;
    }
    return false;
}

static void place(u64 dest, const u8 *src, u64 filesz, u64 memsz)
{
    if (planning) {
        if (!in_guest_ram(dest, memsz))
            load_fail("a segment is not in free guest RAM (hypervisor memory or a hole)", dest);
        if (plan_count == PLAN_MAX)
            load_fail("more than 16 segments", plan_count);
        plan[plan_count].base = dest;
        plan[plan_count++].len = memsz;
    } else {
        if (!placeable(dest, memsz))
            load_fail("a segment is not in free guest RAM (hypervisor memory, a module or a hole)", dest);
        memcpy((void *)dest, src, filesz);
        memset((void *)(dest + filesz), 0, memsz - filesz);
    }
    if (!guest.image_end || dest < guest.image_base)
        guest.image_base = dest;
    if (dest + memsz > guest.image_end)
        guest.image_end = dest + memsz;
}

/* ELF32 / ELF64 program headers (System V gABI, "Program Header"). Returns the entry point. */
static u64 load_elf(const u8 *f, u64 size)
{
    bool is64 = f[4] == 2;
    if (f[4] != 1 && !is64)
        load_fail("unknown ELF class", f[4]);
    u64 entry = is64 ? rd64(f + 24) : rd32(f + 24);
    u64 phoff = is64 ? rd64(f + 32) : rd32(f + 28);
    u16 phentsize = rd16(f + (is64 ? 54 : 42)), phnum = rd16(f + (is64 ? 56 : 44));
    if (phoff + (u64)phnum * phentsize > size)
        load_fail("program headers beyond the file", phoff);
    for (u16 i = 0; i < phnum; i++) {
        const u8 *ph = f + phoff + (u64)i * phentsize;
        if (rd32(ph) != ELF_PT_LOAD)
            continue;
        u64 off = is64 ? rd64(ph + 8) : rd32(ph + 4);
        u64 paddr = is64 ? rd64(ph + 24) : rd32(ph + 12);
        u64 filesz = is64 ? rd64(ph + 32) : rd32(ph + 16);
        u64 memsz = is64 ? rd64(ph + 40) : rd32(ph + 20);
        if (off + filesz > size || filesz > memsz)
            load_fail("a PT_LOAD segment is beyond the file", off);
        place(paddr, f + off, filesz, memsz);
    }
    if (!guest.image_end)
        load_fail("no PT_LOAD segment", 0);
    return entry;
}

static void load_multiboot(const u8 *f, u64 size, u64 hdr_off, const char *args)
{
    const u8 *h = f + hdr_off;
    u32 flags = rd32(h + 4);
    u64 entry;
    if (flags & MB_HEADER_AOUT_KLUDGE) {
        u32 header_addr = rd32(h + 12), load_addr = rd32(h + 16), load_end = rd32(h + 20);
        u32 bss_end = rd32(h + 24);
        entry = rd32(h + 28);
        u64 file_off = hdr_off - (header_addr - load_addr);
        u64 filesz = load_end ? load_end - load_addr : size - file_off;
        if (file_off > size || file_off + filesz > size)
            load_fail("a.out kludge addresses beyond the file", file_off);
        place(load_addr, f + file_off, filesz, bss_end > load_addr + filesz ? bss_end - load_addr : filesz);
    } else if (rd32(f) == 0x464c457f) {
        entry = load_elf(f, size);
    } else {
        load_fail("multiboot header without the a.out kludge and not ELF", flags);
    }
    if (entry >> 32)
        load_fail("entry point above 4 GiB (entered in 32-bit protected mode)", entry);
    if (planning)
        return;
    guest.kind = GUEST_MULTIBOOT;
    guest_write_multiboot_info(mods + 1, mod_strings + 1, mods_count - 1, args);
    guest.bsp = (struct guest_start){ .mode = GUEST_MODE_PM32, .rip = entry };
    guest.bsp.regs[0] = MULTIBOOT_BOOTLOADER_MAGIC;    /* EAX (Multiboot 0.6.96, 3.2 "Machine state") */
    guest.bsp.regs[3] = GUEST_MBI;                     /* EBX */
}

static void load_kernel(const char *args);

static void load_bzimage(const u8 *f, u64 size, const char *args)
{
    u16 version = rd16(f + BZ_VERSION);
    bool relocatable = version >= 0x0205 && f[BZ_RELOCATABLE];
    if (relocatable && version < 0x020a)
        load_fail("relocatable kernel with a boot protocol older than 2.10 (no pref_address/init_size)", version);
    if (version < 0x0200 || !(f[BZ_LOADFLAGS] & BZ_LOADED_HIGH))
        load_fail("not a bzImage loaded high (zImage or boot protocol older than 2.00)", version);
    u32 setup_sects = f[BZ_SETUP_SECTS] ? f[BZ_SETUP_SECTS] : 4;
    u64 pm_off = (setup_sects + 1) * 512ull;
    if (pm_off >= size)
        load_fail("setup sectors beyond the file", pm_off);
    u64 pm_size = size - pm_off;
    u64 init_size = version >= 0x020a ? rd32(f + BZ_INIT_SIZE) : 0;
    u64 need = init_size > pm_size ? init_size : pm_size;
    u64 base;
    if (relocatable) {
        u64 align = rd32(f + BZ_KERNEL_ALIGN);
        if (!align || (align & (align - 1)))
            load_fail("kernel_alignment is not a power of two", align);
        base = ALIGN_UP(rd64(f + BZ_PREF_ADDRESS), align);
        while (base + need <= GiB(4) && !placeable(base, need))
            base += align;
        if (base + need > GiB(4))
            load_fail("no free guest RAM below 4 GiB for init_size bytes", need);
    } else {
        /* boot.rst: a kernel that is not relocatable runs where code32_start says (0x100000) */
        base = rd32(f + BZ_CODE32_START);
    }
    place(base, f + pm_off, pm_size, planning ? need : pm_size);   /* the kernel zeroes its own BSS */
    if (planning)
        return;
    guest.image_end = base + need;
    guest.kind = GUEST_LINUX;
    u32 setup_len = 0x202 + f[BZ_JUMP + 1] - BZ_SETUP_SECTS;   /* the header ends where the jump lands */
    guest_write_boot_params(f + BZ_SETUP_SECTS, setup_len, args, base);
    guest.bsp = (struct guest_start){ .mode = GUEST_MODE_PM32, .rip = base };   /* code32_start */
    guest.bsp.regs[6] = GUEST_BOOT_PARAMS;     /* ESI (boot.rst "32-bit boot protocol") */
}

static bool in_plan(u64 base, u64 len)
{
    for (u32 i = 0; i < plan_count; i++)
        if (overlaps(base, len, plan[i].base, plan[i].len))
            return true;
    return false;
}

/*
 * Every module the kernel would overwrite goes to the top of the guest RAM range just below the
 * hypervisor region (highest first, page aligned: Multiboot 3.1.2 header flag 0), clear of the
 * kernel, the boot data and the other modules; mods[] (what the guest's mbi / boot_params say) follows.
 */
static void move_modules_out_of_the_way(void)
{
    u64 top = 0, bottom = 0;
    for (u32 i = 0; i < guest.map.count; i++) {
        const struct mem_range *r = &guest.map.range[i];
        if (r->type == MEM_USABLE && r->base < GiB(4) && r->base + r->length > top) {
            bottom = r->base;
            top = ALIGN_DOWN(r->base + r->length < GiB(4) ? r->base + r->length : GiB(4), PAGE_SIZE);
        }
    }
    for (u32 i = 0; i < mods_count; i++) {
        u64 len = mods[i].mod_end - mods[i].mod_start;
        if (!in_plan(mods[i].mod_start, len))
            continue;
        u64 dest = ALIGN_DOWN(top - len, PAGE_SIZE);
        for (;;) {
            if (dest < bottom || dest > top)
                load_fail("no guest RAM to move a module out of the kernel's way", mods[i].mod_start);
            bool clash = in_plan(dest, len) || overlaps(dest, len, 0, GUEST_BOOT_DATA_END);
            for (u32 j = 0; j < mods_count && !clash; j++)
                clash = overlaps(dest, len, mods[j].mod_start, mods[j].mod_end - mods[j].mod_start);
            if (!clash)
                break;
            dest -= PAGE_SIZE;
        }
        memcpy((void *)dest, (const void *)(u64)mods[i].mod_start, len);
        printk("guest: module %u moved from 0x%x to 0x%lx (the kernel loads over it)\n", i, mods[i].mod_start,
               dest);
        mods[i].mod_start = (u32)dest;
        mods[i].mod_end = (u32)(dest + len);
        top = dest;
    }
    if (mods_count > 1) {
        guest.initrd_base = mods[1].mod_start;
        guest.initrd_len = mods[1].mod_end - mods[1].mod_start;
    }
}

bool guest_present(const struct multiboot_info *mbi)
{
    return (mbi->flags & MB_INFO_MODS) && mbi->mods_count > 0;
}

void guest_load(const struct multiboot_info *mbi)
{
    const struct multiboot_module *in = (const void *)(u64)mbi->mods_addr;
    mods_count = mbi->mods_count < GUEST_MODS_MAX ? mbi->mods_count : GUEST_MODS_MAX;
    for (u32 i = 0; i < mods_count; i++) {
        mods[i] = in[i];
        const char *str = in[i].string ? (const char *)(u64)in[i].string : "";
        for (u32 n = 0; n < GUEST_CMDLINE_MAX - 1 && str[n]; n++)
            mod_strings[i][n] = str[n];
        mods[i].string = (u32)(u64)mod_strings[i];
    }
    /* Every page of boot data the guest gets must be clear of the modules it is built from. */
    for (u32 i = 0; i < mods_count; i++)
        if (overlaps(GUEST_BOOT_PARAMS, GUEST_BOOT_DATA_END - GUEST_BOOT_PARAMS, mods[i].mod_start,
                     mods[i].mod_end - mods[i].mod_start))
            load_fail("a module lies where the guest's boot data goes", mods[i].mod_start);
    guest.name = mod_strings[0][0] ? mod_strings[0] : "(module 0)";
    const char *args = guest.name;
    while (*args && *args != ' ')
        args++;
    while (*args == ' ')
        args++;
    if (mods_count > 1) {
        guest.initrd_base = mods[1].mod_start;
        guest.initrd_len = mods[1].mod_end - mods[1].mod_start;
    }
    guest_build_memmap(&guest.map);
    guest_write_gdt();
    guest.pm1a_cnt_port = acpi_pm1a_cnt_port();
    guest.smi_cmd_port = acpi_smi_cmd_port();
    planning = true;
    load_kernel(args);
    planning = false;
    move_modules_out_of_the_way();
    guest.image_base = guest.image_end = 0;
    load_kernel(args);
    printk("guest: %s kernel %s loaded at [0x%lx-0x%lx), entry 0x%lx; initrd %lu bytes at 0x%lx\n",
           guest.kind == GUEST_LINUX ? "Linux" : "multiboot", guest.name, guest.image_base, guest.image_end,
           guest.bsp.rip, guest.initrd_len, guest.initrd_base);
}

static void load_kernel(const char *args)
{
    const u8 *f = (const u8 *)(u64)mods[0].mod_start;
    u64 size = mods[0].mod_end - mods[0].mod_start;
    if (size > 0x264 && rd16(f + BZ_BOOT_FLAG) == 0xaa55 && rd32(f + BZ_HEADER_MAGIC) == 0x53726448) {
        load_bzimage(f, size, args);
    } else {
        u64 off = 0;
        for (; off + 12 <= size && off < MB_SEARCH_BYTES; off += 4)
            if (rd32(f + off) == MB_HEADER_MAGIC && rd32(f + off) + rd32(f + off + 4) + rd32(f + off + 8) == 0)
                break;
        if (off + 12 > size || off >= MB_SEARCH_BYTES)
            load_fail("neither a bzImage nor a multiboot kernel (no header in the first 8 KiB)", size);
        load_multiboot(f, size, off, args);
    }
}
