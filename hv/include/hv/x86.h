/* Thin wrappers over x86 instructions the hypervisor core uses. */
#ifndef HV_X86_H
#define HV_X86_H

#include <hv/types.h>
#include <hv/portio.h>

#define MSR_APIC_BASE   0x1b
#define MSR_EFER        0xc0000080
#define MSR_GS_BASE     0xc0000101

/* CR0 bits (SDM Vol. 3A 2.5) */
#define X86_CR0_PE (1ull << 0)
#define X86_CR0_TS (1ull << 3)
#define X86_CR0_ET (1ull << 4)
#define X86_CR0_NE (1ull << 5)
#define X86_CR0_WP (1ull << 16)
#define X86_CR0_NW (1ull << 29)
#define X86_CR0_CD (1ull << 30)
#define X86_CR0_PG (1ull << 31)

/* CR4 bits (SDM Vol. 3A 2.5) */
#define X86_CR4_PSE (1ull << 4)
#define X86_CR4_PAE (1ull << 5)
#define X86_CR4_PGE (1ull << 7)
#define X86_CR4_LA57 (1ull << 12)
#define X86_CR4_VMXE (1ull << 13)
#define X86_CR4_PCIDE (1ull << 17)
#define X86_CR4_OSXSAVE (1ull << 18)
#define X86_CR4_SMEP (1ull << 20)
#define X86_CR4_SMAP (1ull << 21)
#define X86_CR4_PKE (1ull << 22)
/* RFLAGS (SDM Vol. 1 3.4.3) and DR6 (SDM Vol. 3B 18.2.3) */
#define X86_RFLAGS_TF (1ull << 8)
#define X86_RFLAGS_IF (1ull << 9)
#define X86_RFLAGS_DF (1ull << 10)
#define X86_RFLAGS_NT (1ull << 14)
#define X86_RFLAGS_RF (1ull << 16)
#define X86_RFLAGS_VM (1ull << 17)
#define X86_DR6_BS (1ull << 14)
#define X86_DR6_B0_3 0xfull             /* the breakpoint conditions of DR0-DR3 that were met */
#define X86_DR6_INIT 0xffff0ff0ull      /* DR6 after reset / INIT (SDM Vol. 3A Table 10-1) */
#define X86_DR7_INIT 0x400ull           /* DR7 after reset, and the host's DR7 after a VM exit (SDM Vol. 3C 28.5.1) */

/* EFER bits (SDM Vol. 3A 2.2.1) */
#define X86_EFER_LME (1ull << 8)
#define X86_EFER_LMA (1ull << 10)

/*
 * A word that is almost always 0 (or almost always one value), tested in place on the exit path: one CMP
 * with a memory operand and its branch (GCC loads a volatile or atomic word into a register first, one
 * instruction more; issue 18 counts every one). The CMP is an ordinary load: on x86 as ordered as an acquire load (loads are not
 * reordered with other loads, SDM Vol. 3A 10.2.2); the "memory" clobber keeps the compiler's accesses on
 * their side of it, as __atomic_load_n(.., __ATOMIC_ACQUIRE) does. The operand drops the volatile (an asm
 * goto is volatile itself): with it GCC computes the address into a register first.
 */
static inline __attribute__((always_inline)) bool x86_nonzero32(const volatile u32 *p)
{
    __asm__ goto("cmpl $0, %0\n\tjne %l[set]" : : "m"(*(const u32 *)p) : "cc", "memory" : set);
    return false;
set:
    return true;
}
/* The same with the jump on equal: where the usual case (equal) leaves the code, a jump straight there. */
static inline __attribute__((always_inline)) bool x86_equal32(const volatile u32 *p, u32 v)
{
    __asm__ goto("cmpl %1, %0\n\tje %l[eq]" : : "m"(*(const u32 *)p), "ri"(v) : "cc", "memory" : eq);
    return false;
eq:
    return true;
}
static inline __attribute__((always_inline)) bool x86_unequal32(const volatile u32 *p, u32 v)
{
    __asm__ goto("cmpl %1, %0\n\tjne %l[ne]" : : "m"(*(const u32 *)p), "ri"(v) : "cc", "memory" : ne);
    return false;
ne:
    return true;
}
static inline __attribute__((always_inline)) bool x86_nonzero64(const volatile u64 *p)
{
    __asm__ goto("cmpq $0, %0\n\tjne %l[set]" : : "m"(*(const u64 *)p) : "cc", "memory" : set);
    return false;
set:
    return true;
}

static inline u64 rdmsr(u32 msr)
{
    u32 lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((u64)hi << 32) | lo;
}

static inline void wrmsr(u32 msr, u64 v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}

static inline void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

#define DEFINE_READ_CR(n) \
    static inline u64 read_cr##n(void) { u64 v; __asm__ volatile("mov %%cr" #n ", %0" : "=r"(v)); return v; }
DEFINE_READ_CR(0)
DEFINE_READ_CR(2)
DEFINE_READ_CR(3)
DEFINE_READ_CR(4)
#undef DEFINE_READ_CR

static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
/* CR8 is the local APIC's TPR bits 7:4 in 64-bit mode (SDM Vol. 3A 11.8.6.1). */
static inline u64 read_cr8(void) { u64 v; __asm__ volatile("mov %%cr8, %0" : "=r"(v)); return v; }
static inline void write_cr8(u64 v) { __asm__ volatile("mov %0, %%cr8" : : "r"(v) : "memory"); }

/*
 * Physical memory is identity mapped. Going through an opaque register keeps gcc from treating a
 * constant physical address (the BDA, the trampoline page) as a pointer to a zero-sized object.
 */
static inline void *phys(u64 pa)
{
    void *p;
    __asm__("" : "=r"(p) : "0"(pa));
    return p;
}

static inline u64 mmio_read32(u64 addr) { return *(volatile u32 *)addr; }
static inline void mmio_write32(u64 addr, u32 v) { *(volatile u32 *)addr = v; }

/* Descriptor-table register image for lgdt/lidt. */
struct dtr {
    u16 limit;
    u64 base;
} __packed;

#endif
