/* Exit breakpoints (core/trace/breaks.c): matched in the hypervisor, reported to gdb at hv_break_hit(). */
#ifndef HV_BREAKS_H
#define HV_BREAKS_H

#include <hv/abi.h>
#include <hv/break_cache.h>
#include <hv/percpu.h>
#include <hv/x86.h>

extern struct hv_break_config hv_breaks;

/* Whether any entry is armed: the one load and branch every exit pays with nothing armed. */
static inline bool break_armed(void)
{
    return x86_nonzero32(&hv_breaks.armed);
}

/*
 * After break_armed(): true when this CPU's compiled table is the published one (the generation it
 * compiled is still current) and no entry of it holds for this exit. Inline on every exit (issues 16, 18):
 * an exit no entry watches costs a generation compare and one byte of by_kind; a condition that does not
 * hold one pass of brk_first_match; no call, and only scratch registers. Otherwise break_match_armed()
 * decides (a new table to compile, or a hit to count). The publication protocol that makes the cached
 * form safe while tools rewrite the table is in abi.h (hv_break_config).
 */
static inline bool break_surely_misses_as(const struct percpu *pc, const struct hv_record *rec, u8 kind)
{
    if (__atomic_load_n(&hv_breaks.generation, __ATOMIC_ACQUIRE) != pc->breaks.gen)
        return false;
    u32 cand = pc->breaks.by_kind[kind];
    return !cand || brk_first_match(&pc->breaks, cand, rec, pc->exit_regs) < 0;
}
/*
 * After break_armed(): whether the breaks look at an exit of this kind at all: this CPU's compiled table
 * is not the published one (a new table to compile), or an entry of it watches the kind. False is
 * break_surely_misses_as()'s first answer, from the same generation and by_kind: a fast path (exit_fast.h)
 * then needs neither its GPR frame completed nor the breaks evaluated.
 */
static inline bool break_watches(const struct percpu *pc, u8 kind)
{
    return __atomic_load_n(&hv_breaks.generation, __ATOMIC_ACQUIRE) != pc->breaks.gen || pc->breaks.by_kind[kind];
}
/* With the kind the record holds; an exit's inline path (trace.h) passes its constant kind. */
#define break_surely_misses(pc, rec) break_surely_misses_as(pc, rec, (rec)->kind)

/*
 * After break_armed(): index of the first entry that matches this exit and stops, or -1; counts every
 * matching entry's hits (tracepoints and ignored hits included: those never stop). Compiles the table
 * first when this CPU has not compiled the published generation.
 */
int break_match_armed(struct percpu *pc, const struct hv_record *rec);

/* Forget this CPU's compiled table (CPU bring-up: percpu starts zeroed, and generation 0 is not cached). */
void break_init_cpu(struct percpu *pc);
/*
 * Snapshot the CPU's VMCS / VMCB, then, unless a tool rewrote the table since the match, note the hit
 * and call hv_break_hit() (gdb stops there).
 */
void break_hit(struct percpu *pc, int entry, const struct hv_record *rec);
void hv_break_hit(u32 cpu, u32 entry, const struct hv_record *rec, u32 gen);

#endif
