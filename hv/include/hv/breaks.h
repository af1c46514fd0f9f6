/* Exit breakpoints (core/trace/breaks.c): matched in the hypervisor, reported to gdb at hv_break_hit(). */
#ifndef HV_BREAKS_H
#define HV_BREAKS_H

#include <hv/abi.h>
#include <hv/percpu.h>

extern struct hv_break_config hv_breaks;

/*
 * Whether an armed break can match this exit at all: the usual armed-but-not-this-exit case decided
 * before the table is touched (issue 18: inline on every exit, so no break armed and an armed break
 * of another kind cost a few loads, no call).
 */
static inline bool break_may_match(const struct hv_record *rec)
{
    if (!__atomic_load_n(&hv_breaks.armed, __ATOMIC_RELAXED))
        return false;
    u32 kinds = __atomic_load_n(&hv_breaks.kinds, __ATOMIC_RELAXED);
    return !kinds || ((kinds >> (rec->kind & 31)) & 1);
}
/* After break_may_match: index of the first armed entry that matches this exit and stops, or -1. Counts
 * every matching entry's hits (tracepoints and ignored hits included: those never stop). 'armed' is
 * read again: a table changed in between gives an answer the exit could have seen either way. */
int break_match_table(const struct percpu *pc, const struct hv_record *rec);
/* Note the hit, snapshot the CPU's VMCS / VMCB, then call hv_break_hit() (gdb stops there). */
void break_hit(struct percpu *pc, int entry, const struct hv_record *rec);
void hv_break_hit(u32 cpu, u32 entry, const struct hv_record *rec);

#endif
