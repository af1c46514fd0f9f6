/* Multiboot v1 boot information (Multiboot Specification 0.6.96, section 3.3). */
#ifndef HV_MULTIBOOT_H
#define HV_MULTIBOOT_H

#include <hv/types.h>

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002

#define MB_INFO_MEMORY  (1u << 0)
#define MB_INFO_CMDLINE (1u << 2)
#define MB_INFO_MODS    (1u << 3)
#define MB_INFO_MMAP    (1u << 6)

struct multiboot_info {
    u32 flags;
    u32 mem_lower, mem_upper;
    u32 boot_device;
    u32 cmdline;
    u32 mods_count, mods_addr;
    u32 syms[4];
    u32 mmap_length, mmap_addr;
    u32 drives_length, drives_addr;
    u32 config_table;
    u32 boot_loader_name;
    u32 apm_table;
} __packed;

/* 'size' does not count itself: the next entry starts at (u8 *)entry + size + 4. */
struct multiboot_mmap_entry {
    u32 size;
    u64 addr;
    u64 len;
    u32 type;
} __packed;

struct multiboot_module {
    u32 mod_start, mod_end;
    u32 string;
    u32 reserved;
} __packed;

#endif
