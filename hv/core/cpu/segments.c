/*
 * Segment state of the running CPU, read back from its selectors and GDT (SDM Vol. 3A 3.4.5, Figure
 * 3-8; 16-byte system descriptors in long mode, 8.2.3). Both back ends build the blue-pill guest state
 * from it, each in its own attribute format.
 */
#include <hv/segments.h>
#include <hv/x86.h>

#define MSR_FS_BASE 0xc0000100

static u16 read_selector(int which)
{
    u16 v = 0;
    switch (which) {
    case SEG_ES: __asm__ volatile("mov %%es, %0" : "=r"(v)); break;
    case SEG_CS: __asm__ volatile("mov %%cs, %0" : "=r"(v)); break;
    case SEG_SS: __asm__ volatile("mov %%ss, %0" : "=r"(v)); break;
    case SEG_DS: __asm__ volatile("mov %%ds, %0" : "=r"(v)); break;
    case SEG_FS: __asm__ volatile("mov %%fs, %0" : "=r"(v)); break;
    case SEG_GS: __asm__ volatile("mov %%gs, %0" : "=r"(v)); break;
    case SEG_LDTR: __asm__ volatile("sldt %0" : "=r"(v)); break;
    case SEG_TR: __asm__ volatile("str %0" : "=r"(v)); break;
    }
    return v;
}

struct cpu_segment cpu_segment(const struct percpu *pc, int which)
{
    struct cpu_segment s = { .selector = read_selector(which) };
    s.null = !(s.selector & ~7u);
    if (!s.null) {
        u64 d = pc->gdt[s.selector >> 3];
        s.base = ((d >> 16) & 0xffffff) | ((d >> 56) << 24);
        s.limit = (u32)((d & 0xffff) | ((d >> 32) & 0xf0000));
        if (d & (1ull << 55))               /* granularity: limit in 4 KiB units */
            s.limit = (s.limit << 12) | 0xfff;
        s.attr = (u16)((d >> 40) & 0xf0ff);
        s.system = !(d & (1ull << 44));
        if (s.system)                       /* 16 bytes: the upper base is in the next slot */
            s.base |= pc->gdt[(s.selector >> 3) + 1] << 32;
    }
    if (which == SEG_FS)
        s.base = rdmsr(MSR_FS_BASE);
    else if (which == SEG_GS)
        s.base = rdmsr(MSR_GS_BASE);
    return s;
}
