/* The current CPU's segment registers as its GDT describes them, for guest state (core/cpu/segments.c). */
#ifndef HV_SEGMENTS_H
#define HV_SEGMENTS_H

#include <hv/percpu.h>

enum { SEG_ES, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS, SEG_LDTR, SEG_TR, SEG_COUNT };

struct cpu_segment {
    u16 selector;
    bool null;          /* null selector: no descriptor */
    bool system;        /* system descriptor (TSS, LDT), S = 0 */
    u64 base;           /* FS / GS: from their base MSRs, not the GDT */
    u32 limit;          /* byte granular */
    u16 attr;           /* descriptor bits 47:40 in 7:0 and 55:52 in 15:12 (the VMX access-rights layout) */
};

struct cpu_segment cpu_segment(const struct percpu *pc, int which);

#endif
