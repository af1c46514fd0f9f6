/*
 * The per-CPU pre-decoded form of the exit-break table (issue 16), made by break_compile.c whenever a
 * CPU sees a new hv_break_config.generation, and evaluated on every exit that may match.
 *
 * Every criterion of an entry (native reason, --msr/--leaf/... arg0, --gpa range, each condition term)
 * becomes one uniform check on a 64-bit operand x read from the exit's record or GPR frame:
 *
 *     pass  <=>  ((x & mask) - lo) <= span      (unsigned, modulo 2^64)
 *
 * which holds x & mask in the (possibly wrapping) interval [lo, lo + span]: == v is [v, v]; != v is the
 * wrapping [v + 1, v - 1] (span 2^64 - 2); < v, <= v, > v, >= v are [0, v - 1], [0, v], [v + 1, max],
 * [v, max]; "x & m" (some bit of m set) is x & m in [1, m]; the reason is the u16 at record offset 20,
 * masked out of the aligned u64 at offset 16. So one loop with no switch evaluates any entry; a check
 * that can never pass drops its entry at compile time, one that always passes is left out, and the checks
 * are ordered narrowest interval first (an == is tested before a range: the most selective first).
 * The kind and CPU criteria are decided at compile time: by_kind[K] has bit i when entry i can match an
 * exit of kind K on this CPU, so an exit of a kind nothing watches costs one byte load.
 */
#ifndef HV_BREAK_CACHE_H
#define HV_BREAK_CACHE_H

#include <hv/abi.h>
#include <hv/types.h>

_Static_assert(HV_BREAK_MAX <= 8, "by_kind holds one bit per entry in a u8");

#define BRK_CHECKS_MAX (HV_BREAK_TERMS + 3)    /* + reason, arg0, gpa range */
#define BRK_GEN_NONE   0xffffffffu             /* brk_cache.gen: nothing valid cached (tools never publish it) */

struct brk_check {
    u64 mask;
    u64 lo;
    u64 span;
    u16 off;        /* byte offset of x in its source */
    u16 gpr;        /* 1: x is in the exit's GPR frame (pc->exit_regs), 0: in the record */
    u32 last;       /* the entry's last check: all held */
};

/* One entry's checks, in 256 bytes so that entry i is at i << 8 (no multiply on the exit path). */
struct brk_entry {
    struct brk_check check[BRK_CHECKS_MAX];     /* at least one (an always-true one for no criteria) */
    u8 pad[256 - BRK_CHECKS_MAX * sizeof(struct brk_check)];
};
_Static_assert(sizeof(struct brk_entry) == 256, "brk_entry is 256 bytes");

struct brk_cache {
    u32 gen;                        /* hv_break_config.generation this was compiled from, or BRK_GEN_NONE */
    u32 hit_gen;                    /* the generation the last stopping match was made under (breaks.c) */
    u8 by_kind[256];                /* record kind -> entries that may match it on this CPU */
    u8 stops[HV_BREAK_MAX];         /* 0 for a tracepoint (HV_BRK_TRACE): it counts, never stops */
    u64 ignore[HV_BREAK_MAX];       /* stop only once hits > ignore */
    struct brk_entry entry[HV_BREAK_MAX];
};

/*
 * Compile the (already copied: read once) entries 'tab' into 'c' for CPU 'cpu'. have_regs: the exit has a
 * GPR frame (else entries testing a GPR cannot match, as in the generic rule). Does not set c->gen.
 */
void brk_compile(struct brk_cache *c, const struct hv_break tab[HV_BREAK_MAX], u32 cpu, bool have_regs);

/*
 * Whether entry e's checks all hold for this exit (regs may be NULL only if e tests no GPR). Written for
 * the exit path (issue 16): the first check needs no loop test before it (an entry has at least one
 * check), and 'last' is tested only after a check passed.
 */
static inline bool brk_check_holds(const struct brk_check *ch, const struct hv_record *rec, const u64 *regs)
{
    const u8 *base = ch->gpr ? (const u8 *)regs : (const u8 *)rec;
    u64 x;
    __builtin_memcpy(&x, base + ch->off, sizeof(x));
    return (x & ch->mask) - ch->lo <= ch->span;
}

static inline bool brk_entry_holds(const struct brk_entry *e, const struct hv_record *rec, const u64 *regs)
{
    const struct brk_check *ch = e->check;
    if (!brk_check_holds(ch, rec, regs))   /* an entry has at least one check: no loop test before it */
        return false;
    while (!ch->last)
        if (!brk_check_holds(++ch, rec, regs))
            return false;
    return true;
}

/* The lowest entry of 'cand' (not 0) whose checks hold for this exit, or -1. */
static inline int brk_first_match(const struct brk_cache *c, u32 cand, const struct hv_record *rec,
                                  const u64 *regs)
{
    do {
        u64 i = (u64)__builtin_ctzll(cand);
        if (brk_entry_holds(&c->entry[i], rec, regs))
            return (int)i;
        cand &= cand - 1;
    } while (cand);
    return -1;
}

#endif
