/*
 * hv_main: the hypervisor's entry flow (the seed's DriverEntry, docs/walkthrough.md step 1), reached from boot/entry.S in long
 * mode on the BSP: console -> command line -> memory map (GetE820FromRegistry) -> page pool ->
 * per-CPU tables -> ACPI processor list -> every AP online -> virtualize every CPU and run the
 * self-test guest on each (core/cpu/virt.c) -> optional CPUID storm -> final status.
 */
#include <hv/abi.h>
#include <hv/acpi.h>
#include <hv/backend.h>
#include <hv/cmdline.h>
#include <hv/console.h>
#include <hv/discovery.h>
#include <hv/gdbstub.h>
#include <hv/guest.h>
#include <hv/lapic.h>
#include <hv/memmap.h>
#include <hv/multiboot.h>
#include <hv/panic.h>
#include <hv/percpu.h>
#include <hv/pool.h>
#include <hv/relocate.h>
#include <hv/smp.h>
#include <hv/timer.h>
#include <hv/x86.h>

extern u8 __image_start[];
void fault_inject(void);
__noreturn void guest_storm(void);
void guest_storm_count(u64 iterations);

/* Keep the loader's data out of the page pool: the info block, the map, cmdline, modules. */
static void claim_boot_data(const struct multiboot_info *mbi)
{
    /* The image at the top of RAM and the rest of that range above it (< 2 MiB, core/lib/relocate.c). */
    pool_claim((u64)__image_start, hv_image_top - (u64)__image_start, "image");
    pool_claim((u64)mbi, sizeof(*mbi), "multiboot info");
    if (mbi->flags & MB_INFO_MMAP)
        pool_claim(mbi->mmap_addr, mbi->mmap_length, "multiboot mmap");
    if (mbi->flags & MB_INFO_CMDLINE)
        pool_claim(mbi->cmdline, strlen((const char *)(u64)mbi->cmdline) + 1, "cmdline");
    if ((mbi->flags & MB_INFO_MODS) && mbi->mods_count) {
        const struct multiboot_module *mods = (const void *)(u64)mbi->mods_addr;
        pool_claim(mbi->mods_addr, mbi->mods_count * sizeof(*mods), "module list");
        for (u32 i = 0; i < mbi->mods_count; i++) {
            pool_claim(mods[i].mod_start, mods[i].mod_end - mods[i].mod_start, "module");
            if (mods[i].string)
                pool_claim(mods[i].string, strlen((const char *)(u64)mods[i].string) + 1, "module name");
        }
    }
}

__noreturn void hv_main(u32 magic, u32 mbi_addr);

__noreturn void hv_main(u32 magic, u32 mbi_addr)
{
    console_init();
    cpu_bsp_init();
    printk("hvtrace hypervisor (ABI %u) starting on the BSP\n", HV_ABI_VERSION);
    relocate_finish();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        hv_fail(HV_STATUS_BAD_BOOTINFO, "bad_bootinfo", "not started by a multiboot loader (EAX=0x%x)", magic);
    const struct multiboot_info *mbi = (const void *)(u64)mbi_addr;
    cmdline_parse((mbi->flags & MB_INFO_CMDLINE) ? (const char *)(u64)mbi->cmdline : "");
    printk("command line: %s\n", hv_cmdline);
    console_configure(hv_options.console_port, hv_options.console_baud);
    gdbstub_init();

    memmap_init(mbi);
    memmap_print();
    claim_boot_data(mbi);
    pool_init();

    timer_calibrate();
    struct acpi_cpus found;
    acpi_find_cpus(&found);
    lapic_init(found.lapic_base);
    smp_start_aps(&found);
    printk("%u CPUs online\n", cpu_count);
    discovery_init(cpu_count);

    fault_inject();
    if (hv_options.hang) {
        printk("hang=1: spinning forever without a final status\n");
        for (;;)
            cpu_relax();
    }
    if (guest_present(mbi))
        virt_run_guest(mbi);    /* a kernel module: run it instead of the self-test; never returns */
    if (!virt_run_all())
        hv_exit(HV_STATUS_FAIL, "selftest");
    if (hv_options.storm)
        guest_storm();
    if (hv_options.storm_iters)
        guest_storm_count(hv_options.storm_iters);
    hv_exit(HV_STATUS_PASS, "ok");
}
