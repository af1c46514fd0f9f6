/*
 * Per-CPU descriptor tables. Every CPU gets its own GDT (null, 64-bit code, data, TSS), TSS with an
 * IST stack for #DF/NMI/#MC (so a blown stack still reports), and IDT, all inside its struct percpu.
 * Selectors match what VMX host state needs later: CS 0x08, SS 0x10, TR 0x18 (SDM Vol. 3C 28.2.3).
 */
#include <hv/percpu.h>
#include "boot.h"
#include <hv/x86.h>

extern const u64 isr_table[256];

struct percpu *cpus[HV_MAX_CPUS];
u32 cpu_count;

/* The BSP's structures are static: its descriptor tables must work before the page pool exists. */
static struct percpu bsp_percpu __attribute__((aligned(4096)));
static u8 bsp_ist_stack[CPU_IST_PAGES * PAGE_SIZE] __attribute__((aligned(16)));
extern u8 boot_stack[];

#define IST_CRITICAL 1      /* IST slot used by #DF, NMI and #MC */

static u64 tss_descriptor_lo(u64 base, u32 limit)
{
    /* 64-bit available TSS, type 9, present (SDM Vol. 3A 8.2.3, Figure 8-4). */
    return (limit & 0xffffull) | ((base & 0xffffffull) << 16) | (0x89ull << 40) | (((u64)limit >> 16 & 0xf) << 48) |
           ((base >> 24 & 0xff) << 56);
}

static void set_gate(struct idt_gate *g, u64 handler, u8 ist)
{
    g->offset_lo = (u16)handler;
    g->selector = GDT_CODE64;
    g->ist = ist;
    g->type_attr = 0x8e;            /* present, DPL 0, 64-bit interrupt gate */
    g->offset_mid = (u16)(handler >> 16);
    g->offset_hi = (u32)(handler >> 32);
    g->reserved = 0;
}

void cpu_init_local(struct percpu *pc)
{
    pc->self = pc;
    pc->gdt[0] = 0;
    pc->gdt[1] = 0x00af9a000000ffffull;     /* GDT_CODE64 */
    pc->gdt[2] = 0x00cf92000000ffffull;     /* GDT_DATA */
    pc->gdt[3] = tss_descriptor_lo((u64)&pc->tss, sizeof(pc->tss) - 1);
    pc->gdt[4] = (u64)&pc->tss >> 32;
    pc->gdt[5] = 0x00cff2000000ffffull;     /* GDT_USER_DATA, DPL 3 */
    pc->gdt[6] = 0x00affa000000ffffull;     /* GDT_USER_CODE64, DPL 3 */
    memset(&pc->tss, 0, sizeof(pc->tss));
    /* The IST area's upper page serves #DF/NMI/#MC, its lower page CPL3 -> CPL0 transitions (RSP0). */
    pc->tss.ist[IST_CRITICAL - 1] = pc->ist_top;
    pc->tss.rsp[0] = pc->ist_top - PAGE_SIZE;
    pc->tss.iomap_base = sizeof(pc->tss);   /* no I/O permission bitmap */
    for (int v = 0; v < 256; v++)
        set_gate(&pc->idt[v], isr_table[v], (v == 2 || v == 8 || v == 18) ? IST_CRITICAL : 0);

    struct dtr gdtr = { sizeof(pc->gdt) - 1, (u64)pc->gdt };
    struct dtr idtr = { sizeof(pc->idt) - 1, (u64)pc->idt };
    __asm__ volatile(
        "lgdt %0\n\t"
        "pushq %[cs]\n\t"
        "leaq 1f(%%rip), %%rax\n\t"
        "pushq %%rax\n\t"
        "lretq\n"                           /* reload CS from the new GDT */
        "1:\n\t"
        "movw %w[ds], %%ax\n\t"
        "movw %%ax, %%ds\n\t"
        "movw %%ax, %%es\n\t"
        "movw %%ax, %%ss\n\t"
        "xorl %%eax, %%eax\n\t"
        "movw %%ax, %%fs\n\t"
        "movw %%ax, %%gs\n\t"
        "ltr %w[tr]\n\t"
        "lidt %1"
        :
        : "m"(gdtr), "m"(idtr), [cs] "i"(GDT_CODE64), [ds] "r"(GDT_DATA), [tr] "r"(GDT_TSS)
        : "rax", "memory");
    /* XSETBV needs CR4.OSXSAVE (SDM Vol. 1 13.3); guests inherit it and may then use XSAVE. */
    u32 a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    if (c & (1u << 26))
        __asm__ volatile("mov %%cr4, %%rax; or $(1 << 18), %%rax; mov %%rax, %%cr4" ::: "rax", "memory");
    /* Loading GS zeroed its base: point it at this CPU's structure last. */
    wrmsr(MSR_GS_BASE, (u64)pc);
}

struct percpu *cpu_bsp_init(void)
{
    struct percpu *pc = &bsp_percpu;
    pc->index = 0;
    pc->stack_top = (u64)boot_stack + BOOT_STACK_SIZE;
    pc->ist_top = (u64)bsp_ist_stack + sizeof(bsp_ist_stack);
    cpu_init_local(pc);
    cpus[0] = pc;
    cpu_count = 1;
    return pc;
}
