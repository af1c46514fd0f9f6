/* Exit breakpoints (core/trace/breaks.c): matched in the hypervisor, reported to gdb at hv_break_hit(). */
#ifndef HV_BREAKS_H
#define HV_BREAKS_H

#include <hv/abi.h>
#include <hv/percpu.h>

extern struct hv_break_config hv_breaks;

/* Index of the first armed entry that matches this exit and stops, or -1. Counts every matching
 * entry's hits (tracepoints and ignored hits included: those never stop). */
int break_match(const struct percpu *pc, const struct hv_record *rec);
/* Note the hit, snapshot the CPU's VMCS / VMCB, then call hv_break_hit() (gdb stops there). */
void break_hit(struct percpu *pc, int entry, const struct hv_record *rec);
void hv_break_hit(u32 cpu, u32 entry, const struct hv_record *rec);

#endif
