/*
 * A loaded guest: a kernel given as the first multiboot module (QEMU -initrd, GRUB 'module'), the
 * optional second module its initrd / first module. core/guest/guest_load.c loads it (multiboot v1 ELF32/
 * ELF64 or a.out kludge; Linux bzImage by the x86 boot protocol), core/guest/guest_boot.c writes what the
 * kernel expects to find (multiboot information / boot_params, a memory map without hypervisor
 * memory, cmdline, a flat GDT) and the back ends start it with a fresh register state.
 */
#ifndef HV_GUEST_H
#define HV_GUEST_H

#include <hv/memmap.h>
#include <hv/types.h>

struct multiboot_info;

enum guest_kind { GUEST_NONE, GUEST_MULTIBOOT, GUEST_LINUX };
enum guest_mode {
    GUEST_MODE_PM32,    /* 32-bit protected mode, paging off, flat CS/DS (multiboot; Linux 32-bit entry) */
    GUEST_MODE_REAL,    /* real mode at a SIPI vector: CS = vector << 8, IP = 0 */
};

/* Where the hypervisor builds the guest's boot data (guest-physical, identity mapped, usable RAM). */
#define GUEST_BOOT_PARAMS 0x10000   /* Linux boot_params (the "zero page") */
#define GUEST_CMDLINE     0x11000
#define GUEST_GDT         0x12000
#define GUEST_MBI         0x13000   /* multiboot information, then its memory map, modules, their strings */
#define GUEST_BOOT_DATA_END 0x15000
#define GUEST_CMDLINE_MAX 2048
#define GUEST_MODS_MAX    4
#define GUEST_HV_RANGES_MAX 16

/* Guest GDT selectors: the Linux 32-bit boot protocol wants __BOOT_CS = 0x10, __BOOT_DS = 0x18. */
#define GUEST_SEL_CODE 0x10
#define GUEST_SEL_DATA 0x18

/* The register state a back end enters the guest with (GPRs in struct guest_regs order). */
struct guest_start {
    u32 mode;           /* enum guest_mode */
    u64 rip;            /* PM32: EIP; REAL: IP */
    u16 sipi_vector;    /* REAL */
    u64 regs[16];       /* RAX RCX RDX RBX RSP RBP RSI RDI R8-R15 */
};

struct guest {
    enum guest_kind kind;
    const char *name;               /* the module's string: file name and arguments */
    u64 image_base, image_end;      /* where the kernel was loaded */
    u64 initrd_base, initrd_len;    /* 0 if none */
    struct memmap map;              /* what the guest is told: RAM minus hypervisor memory */
    struct guest_start bsp;
    /* Hypervisor memory, sorted: fixed once the pool is sealed (guest_isolate), none in blue-pill runs. */
    struct mem_range hv[GUEST_HV_RANGES_MAX];
    u32 hv_count;
    u16 pm1a_cnt_port;              /* ACPI power-off port (intercepted, core/guest/io_policy.c), 0 if none */
    u16 smi_cmd_port;               /* ACPI SMI command port (intercepted, io_policy.c), 0 if none */
};

extern struct guest guest;

/* True if the loader handed over a guest kernel module (hypervisor then runs it instead of the self-test). */
bool guest_present(const struct multiboot_info *mbi);
/* Load the kernel and write its boot data; call after the pool is sealed. Fails the run on errors. */
void guest_load(const struct multiboot_info *mbi);
/* Is gpa hypervisor memory the guest must never touch? */
bool guest_gpa_is_hv(u64 gpa);
struct stage2;
/* Note hypervisor memory (image, sealed page pool) in guest.hv and remove it from a stage-2 map. */
bool guest_isolate(struct stage2 *s);
/* A blocked guest access to hypervisor memory, for the console (the record is flagged by the caller). */
void security_event(u32 cpu, const char *vendor, u64 gpa, const char *access, u64 rip);

/* core/guest/guest_io.c: accesses to the intercepted ports; whys: io_policy_whys(port, size), asked once
 * per exit (core/guest/io_policy.c) */
struct percpu;
void guest_io_out(struct percpu *pc, u16 port, u32 size, u32 value, u32 whys);
u32 guest_io_in(u16 port, u32 size, u32 whys);

/* core/guest/guest_boot.c */
void guest_build_memmap(struct memmap *out);
void guest_write_gdt(void);
struct multiboot_module;
void guest_write_multiboot_info(const struct multiboot_module *mods, const char (*strings)[GUEST_CMDLINE_MAX], u32 count,
                                const char *cmdline);
void guest_write_boot_params(const u8 *setup, u32 setup_len, const char *cmdline, u64 kernel_base);

#endif
