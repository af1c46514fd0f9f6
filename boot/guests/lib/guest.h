/*
 * What the test guests (chaos, conform, mbtest: multiboot v1, ELF32, 32-bit protected mode, no libc)
 * share: fixed-width types, port I/O (hv/portio.h), CPUID/MSR/control-register access, the multiboot information block,
 * the COM1 console (console.c), CRC-32 (crc32.c), command-line words (cmdline.c) and ACPI power-off
 * (acpi.c), which each guest links (hv/Makefile GUEST_LIB).
 */
#ifndef GUEST_LIB_GUEST_H
#define GUEST_LIB_GUEST_H

#include <hv/portio.h>  /* outb inb ...: the hypervisor's own copy (hv/include is on the include path) */

typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned short u16;
typedef unsigned char u8;

#define COM1 0x3f8

/* ----------------------------------------------------------------------- CPUID, MSRs, CRs, XCRs */
static inline void cpuid_sub(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}
static inline void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d) { cpuid_sub(leaf, 0, a, b, c, d); }
static inline u64 rdmsr(u32 msr)
{
    u32 lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr) : "memory");
    return (u64)hi << 32 | lo;
}
static inline void wrmsr(u32 msr, u64 v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}
static inline void xsetbv(u32 idx, u64 v)
{
    __asm__ volatile("xsetbv" : : "c"(idx), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}
#define RDCR(n) ({ u32 _v; __asm__ volatile("movl %%cr" #n ", %0" : "=r"(_v)); _v; })
#define WRCR(n, v) __asm__ volatile("movl %0, %%cr" #n : : "r"((u32)(v)) : "memory")

static inline void delay(u32 loops)
{
    for (volatile u32 i = 0; i < loops; i++)
        __asm__ volatile("pause");
}

/* --------------------------------------------------------- multiboot v1 information (spec 3.3) */
struct mb_info {
    u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr, syms[4];
    u32 mmap_length, mmap_addr;
};
struct mb_mmap {
    u32 size;
    u64 addr, len;
    u32 type;
} __attribute__((packed));

/* The hypervisor's hypercall (abi.h HV_HC_*): VMMCALL on AMD, VMCALL on Intel; EAX in and out, EBX. */
static inline u32 hypercall(int amd, u32 fn, u32 arg)
{
    if (amd)
        __asm__ volatile("vmmcall" : "+a"(fn) : "b"(arg) : "ecx", "edx", "memory");
    else
        __asm__ volatile("vmcall" : "+a"(fn) : "b"(arg) : "ecx", "edx", "memory");
    return fn;
}

/* ----------------------------------------------------------------- console.c, crc32.c, ... */
void console_init(void);           /* COM1: 115200 8N1, FIFO */
void putc(char c);
void puts(const char *s);
void puthex(u64 v);                /* 0x and the digits, no leading zeros */
void puthex8(u32 v);               /* 0x and exactly 8 digits */
void puthex16(u64 v);              /* 0x and exactly 16 digits */
void putdec(u32 v);
/* text, then the value (report lines are runs of label and value) */
void puts_dec(const char *text, u32 v);
void puts_hex(const char *text, u64 v);
void puts_hex8(const char *text, u32 v);
void puts_hex16(const char *text, u64 v);
u32 crc32(const u8 *p, u32 n);     /* zlib's CRC-32 (reflected 0xEDB88320) */
/* cmdline.c: the word starting with 'key' ("seed=") at a word start of cmdline: 1 and *val after it. */
int cmdline_word(const char *cmdline, const char *key, const char **val);
/* cmdline.c: the loader's command line copied into buf (size bytes; empty without one); returns buf. */
char *mb_cmdline(char *buf, u32 size, u32 magic, const struct mb_info *info);
/* acpi.c: the FADT (ACPI 6.4 5.2.9) through the RSDP and RSDT, 0 without ACPI tables. */
const u8 *acpi_fadt(void);
/* acpi.c: the FADT's PM1a control port (0 without ACPI tables); a write of SLP_EN there powers off. */
u16 acpi_pm1a_cnt(void);
void acpi_poweroff(u16 pm1a_cnt);

#endif
