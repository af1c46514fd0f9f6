/*
 * Host-side checks of the exit-break evaluation (issue 16): the per-CPU pre-decoded form
 * (hv/core/trace/break_compile.c, hv/include/hv/break_cache.h) against the table's plain meaning (abi.h,
 * written out below as the reference), and the publication protocol of hv/core/trace/breaks.c while a
 * tool rewrites the table: nothing fires while disarmed, a stale entry never fires after re-arming, and a
 * table copied while a tool rewrote it (memcpy interposed) is dropped, never evaluated.
 * Prints "N checks passed" or "M of N checks failed" (tests/unit/test_native_checks.py reads it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hv/backend.h>
#include <hv/break_cache.h>
#include <hv/breaks.h>

#include "check.h"

const struct hv_backend *virt_backend;      /* break_hit() takes no snapshot, except the parked CPU's below */

#define MAX ~0ull

/* ---- the reference: abi.h's words, evaluated directly on the table -------------------------------- */

static bool ref_term(const struct hv_break_term *t, const u64 *regs, const struct hv_record *rec)
{
    static const u32 field[] = { offsetof(struct hv_record, arg0), offsetof(struct hv_record, arg1),
                                 offsetof(struct hv_record, qual), offsetof(struct hv_record, gpa),
                                 offsetof(struct hv_record, rip), offsetof(struct hv_record, cr3) };
    u64 x;
    if (t->operand < HV_BRK_OPD_GPRS) {
        if (!regs)
            return false;
        x = regs[t->operand];
    } else if (t->operand < HV_BRK_OPD_COUNT) {
        memcpy(&x, (const u8 *)rec + field[t->operand - HV_BRK_OPD_GPRS], 8);
    } else {
        return false;
    }
    switch (t->op) {
    case HV_BRK_OP_EQ: return x == t->value;
    case HV_BRK_OP_NE: return x != t->value;
    case HV_BRK_OP_LT: return x < t->value;
    case HV_BRK_OP_LE: return x <= t->value;
    case HV_BRK_OP_GT: return x > t->value;
    case HV_BRK_OP_GE: return x >= t->value;
    case HV_BRK_OP_TEST: return (x & t->value) != 0;
    default: return false;
    }
}

static bool ref_matches(const struct hv_break *b, u32 cpu, const u64 *regs, const struct hv_record *rec)
{
    if (!b->enabled)
        return false;
    if (!((b->kind == HV_BRK_ANY || b->kind == rec->kind) && (b->reason == HV_BRK_ANY || b->reason == rec->reason) &&
          (b->cpu == HV_BRK_ANY || b->cpu == cpu) && (!(b->flags & HV_BRK_MATCH_ARG0) || b->arg0 == rec->arg0) &&
          (!(b->flags & HV_BRK_MATCH_GPA) || (rec->gpa >= b->gpa_lo && rec->gpa <= b->gpa_hi))))
        return false;
    u32 n = b->nterms < HV_BREAK_TERMS ? b->nterms : HV_BREAK_TERMS;
    for (u32 i = 0; i < n; i++)
        if (!ref_term(&b->term[i], regs, rec))
            return false;
    return true;
}

/* The entries (bit i) of a compiled table that hold for this exit. */
static u32 compiled_mask(const struct brk_cache *c, const u64 *regs, const struct hv_record *rec)
{
    u32 mask = 0, cand = c->by_kind[rec->kind];
    for (u32 i = 0; i < HV_BREAK_MAX; i++)
        if ((cand >> i & 1) && brk_entry_holds(&c->entry[i], rec, regs))
            mask |= 1u << i;
    return mask;
}

static u32 ref_mask(const struct hv_break *tab, u32 cpu, const u64 *regs, const struct hv_record *rec)
{
    u32 mask = 0;
    for (u32 i = 0; i < HV_BREAK_MAX; i++)
        if (ref_matches(&tab[i], cpu, regs, rec))
            mask |= 1u << i;
    return mask;
}

static u64 rng_state = 0x9e3779b97f4a7c15ull;
static u64 rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void set_operand(u64 *regs, struct hv_record *rec, u32 operand, u64 x)
{
    static const u32 field[] = { offsetof(struct hv_record, arg0), offsetof(struct hv_record, arg1),
                                 offsetof(struct hv_record, qual), offsetof(struct hv_record, gpa),
                                 offsetof(struct hv_record, rip), offsetof(struct hv_record, cr3) };
    if (operand < HV_BRK_OPD_GPRS)
        regs[operand] = x;
    else if (operand < HV_BRK_OPD_COUNT)
        memcpy((u8 *)rec + field[operand - HV_BRK_OPD_GPRS], &x, 8);
}

/* Every op (and an unknown one) on every kind of operand, at and around the unsigned boundaries. */
static void test_ops_on_boundaries(void)
{
    static const u64 values[] = { 0, 1, 2, 0x7fffffffffffffffull, 0x8000000000000000ull, MAX - 1, MAX,
                                  0x12345678, 0xf0 };
    static const u32 operands[] = { 0, 1, 4, 15, HV_BRK_OPD_ARG0, HV_BRK_OPD_ARG1, HV_BRK_OPD_QUAL, HV_BRK_OPD_GPA,
                                    HV_BRK_OPD_RIP, HV_BRK_OPD_CR3, HV_BRK_OPD_COUNT, 255 };
    static struct brk_cache c;
    unsigned agree = 0, held = 0;
    for (u32 op = 0; op <= HV_BRK_OP_TEST + 1; op++)
        for (u32 o = 0; o < ARRAY_SIZE(operands); o++)
            for (u32 v = 0; v < ARRAY_SIZE(values); v++) {
                struct hv_break tab[HV_BREAK_MAX] = { 0 };
                tab[0] = (struct hv_break){ .enabled = 1, .kind = HV_BRK_ANY, .reason = HV_BRK_ANY,
                                            .cpu = HV_BRK_ANY, .nterms = 1 };
                tab[0].term[0] = (struct hv_break_term){ .operand = (u8)operands[o], .op = (u8)op,
                                                         .value = values[v] };
                brk_compile(&c, tab, 0, true);
                for (u32 xi = 0; xi < ARRAY_SIZE(values); xi++)
                    for (int d = -1; d <= 1; d++) {
                        u64 regs[16] = { 0 };
                        struct hv_record rec = { .kind = HV_EXIT_CPUID };
                        u64 x = values[xi] + (u64)(i64)d;
                        set_operand(regs, &rec, operands[o], x);
                        bool want = ref_matches(&tab[0], 0, regs, &rec);
                        bool got = compiled_mask(&c, regs, &rec) & 1;
                        CHECK(got == want, "op %u operand %u value %#llx x %#llx: compiled %d, abi.h %d", op,
                              operands[o], (unsigned long long)values[v], (unsigned long long)x, got, want);
                        agree += got == want;
                        held += want;
                    }
            }
    CHECK(held > 1000 && agree > held, "the boundary cases both hold and fail (%u held)", held);
}

/* Whole random tables (every criterion, up to 6 terms of which 4 count, odd operands and ops), random
 * exits whose fields come from a few values so that entries do match: the compiled form decides every
 * entry as abi.h does, on every CPU, with and without a GPR frame. */
static void test_random_tables(void)
{
    static const u64 small[] = { 0, 1, 2, 7, 0x10, 0x1b, MAX, 0x8000000000000000ull };
    static struct brk_cache c;
    unsigned matched = 0;
    for (int round = 0; round < 3000; round++) {
        struct hv_break tab[HV_BREAK_MAX];
        memset(tab, 0, sizeof(tab));
        for (u32 i = 0; i < HV_BREAK_MAX; i++) {
            struct hv_break *b = &tab[i];
            u64 r = rnd();
            b->enabled = (r & 3) != 0;
            b->kind = (r >> 2 & 3) == 0 ? HV_BRK_ANY : (r >> 4 & 1) ? 300 : (u32)(r >> 5) % 4;
            b->reason = (r >> 8 & 3) ? HV_BRK_ANY : (r >> 10 & 1) ? 0x10001 : (u32)(r >> 11) % 3;
            b->cpu = (r >> 13 & 1) ? HV_BRK_ANY : (u32)(r >> 14) % 3;
            b->flags = (u32)(r >> 16) & 7;
            b->arg0 = small[(r >> 19) % 8];
            b->gpa_lo = small[(r >> 22) % 8];
            b->gpa_hi = small[(r >> 25) % 8];
            b->ignore = (r >> 28) % 3;
            b->nterms = (u32)(r >> 30) % 7;
            for (u32 t = 0; t < HV_BREAK_TERMS; t++) {
                u64 q = rnd();
                b->term[t].operand = (q & 7) == 0 ? (u8)(HV_BRK_OPD_GPRS + (q >> 3) % 7) : (u8)((q >> 3) % 16);
                b->term[t].op = (u8)((q >> 8) % 8);
                b->term[t].value = small[(q >> 11) % 8] + ((q >> 14 & 3) == 0);
            }
        }
        for (int e = 0; e < 30; e++) {
            u64 regs[16];
            for (u32 k = 0; k < 16; k++)
                regs[k] = small[rnd() % 8];
            struct hv_record rec = { .kind = (u8)(rnd() % 4), .reason = (u16)(rnd() % 3), .qual = small[rnd() % 8],
                                     .rip = small[rnd() % 8], .gpa = small[rnd() % 8], .arg0 = small[rnd() % 8],
                                     .arg1 = small[rnd() % 8], .cr3 = small[rnd() % 8] };
            for (u32 cpu = 0; cpu < 3; cpu++)
                for (int have = 0; have < 2; have++) {
                    brk_compile(&c, tab, cpu, have);
                    const u64 *r = have ? regs : NULL;
                    u32 want = ref_mask(tab, cpu, r, &rec), got = compiled_mask(&c, r, &rec);
                    CHECK(got == want, "round %d cpu %u regs %d: compiled %#x, abi.h %#x", round, cpu, have, got,
                          want);
                    u32 cand = c.by_kind[rec.kind];
                    int first = cand ? brk_first_match(&c, cand, &rec, r) : -1;
                    CHECK(first == (want ? __builtin_ctz(want) : -1), "first match %d of %#x", first, want);
                    matched += want != 0;
                }
        }
    }
    CHECK(matched > 10000, "random exits do match (%u)", matched);
}

/* ---- breaks.c and the publication protocol (abi.h) ----------------------------------------------- */

static struct percpu *cpu0, *cpu1;

/* trace_exit's composition (hv/core/trace/trace.c). */
static int exit_on(struct percpu *pc, u64 *regs, u32 kind, u64 rax, u64 rcx)
{
    pc->exit_regs = regs;
    if (regs) {
        regs[0] = rax;
        regs[1] = rcx;
    }
    struct hv_record rec = { .kind = (u8)kind, .reason = 0x72 };
    if (break_armed() && !break_surely_misses(pc, &rec))
        return break_match_armed(pc, &rec);
    return -1;
}

static u64 regs0[16], regs1[16];

static struct hv_break cond(u32 operand, u64 value)
{
    struct hv_break b = { .enabled = 1, .kind = HV_EXIT_CPUID, .reason = HV_BRK_ANY, .cpu = HV_BRK_ANY,
                          .nterms = 1 };
    b.term[0] = (struct hv_break_term){ .operand = (u8)operand, .op = HV_BRK_OP_EQ, .value = value };
    return b;
}

/* The tool's side, step by step (gdbext/model.py publish_writes). */
static void disarm(void) { __atomic_store_n(&hv_breaks.armed, 0, __ATOMIC_RELEASE); }
static void write_entry(u32 i, struct hv_break b) { hv_breaks.entry[i] = b; }
static void bump(void)
{
    u32 g = hv_breaks.generation + 1;
    __atomic_store_n(&hv_breaks.generation, g == BRK_GEN_NONE || !g ? 1 : g, __ATOMIC_RELEASE);
}
static void rearm(void)
{
    u32 n = 0;
    for (u32 i = 0; i < HV_BREAK_MAX; i++)
        n += hv_breaks.entry[i].enabled != 0;
    __atomic_store_n(&hv_breaks.armed, n, __ATOMIC_RELEASE);
}
static void publish(u32 i, struct hv_break b)
{
    disarm();
    write_entry(i, b);
    bump();
    rearm();
}
static void reset(void)
{
    memset(&hv_breaks, 0, sizeof(hv_breaks));
    hv_breaks.generation = 100;
    break_init_cpu(cpu0);
    break_init_cpu(cpu1);
}

#define A cond(0, 0x1111)   /* cpuid if rax == 0x1111 */
#define B cond(1, 0x2222)   /* cpuid if rcx == 0x2222 */

static void test_rewrite_never_fires_stale(void)
{
    reset();
    publish(0, A);
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0x1111, 0) == 0, "A fires");
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0x2222, 0) == -1, "A only on its value");
    CHECK(cpu0->breaks.gen == hv_breaks.generation, "A is kept compiled");
    CHECK(exit_on(cpu0, regs0, HV_EXIT_MSR_READ, 0x1111, 0) == -1, "A only on CPUID");
    CHECK(hv_breaks.entry[0].hits == 1, "A counted once (%llu)", (unsigned long long)hv_breaks.entry[0].hits);

    disarm();   /* 1 */
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0x1111, 0) == -1, "nothing fires while disarmed");
    write_entry(0, B);   /* 2 */
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0x1111, 0x2222) == -1, "nor while the entry is written");
    bump();   /* 3 */
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0x1111, 0x2222) == -1, "nor before re-arming");
    rearm();   /* 4 */
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0x1111, 0) == -1, "the stale A never fires after the rewrite");
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0, 0x2222) == 0, "B fires");
    CHECK(hv_breaks.entry[0].hits == 1, "B counted once, A's hits gone with it");

    /* A CPU that compiled nothing in between (cpu1 never ran) sees only the current table too. */
    CHECK(exit_on(cpu1, regs1, HV_EXIT_CPUID, 0x1111, 0) == -1, "cpu1: A never fires");
    CHECK(exit_on(cpu1, regs1, HV_EXIT_CPUID, 0, 0x2222) == 0, "cpu1: B fires");
}

/* memcpy interposed in breaks.c (the Makefile builds it with -Dmemcpy=brk_test_memcpy): a tool rewrites
 * the table in the middle of the CPU's copy of it. */
static size_t tear_at;          /* 0: no tool acts */
static struct hv_break tear_to;
static struct hv_break torn[HV_BREAK_MAX];
void *brk_test_memcpy(void *d, const void *s, size_t n);
void *brk_test_memcpy(void *d, const void *s, size_t n)
{
    if (!tear_at || n < tear_at)
        return memcpy(d, s, n);
    memcpy(d, s, tear_at);
    publish(0, tear_to);
    memcpy((u8 *)d + tear_at, (const u8 *)s + tear_at, n - tear_at);
    memcpy(torn, d, sizeof(torn));
    tear_at = 0;
    return d;
}

static void test_torn_copy_is_dropped(void)
{
    reset();
    publish(0, A);   /* cpu0 has not compiled it: its next exit copies the table */
    tear_at = offsetof(struct hv_break, term[0].value);   /* A's operand (rax), then B's value */
    tear_to = B;
    /* Z: rax == 0x2222 and rcx == 0x1111 match neither A nor B, only their torn mix "rax == 0x2222". */
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0x2222, 0x1111) == -1, "a torn copy is not evaluated");
    CHECK(tear_at == 0, "the tool did rewrite the table during the copy");
    static struct brk_cache mix;
    brk_compile(&mix, torn, 0, true);
    struct hv_record rec = { .kind = HV_EXIT_CPUID };
    u64 z[16] = { 0x2222, 0x1111 };
    CHECK(compiled_mask(&mix, z, &rec) == 1, "the copy was torn (its mix matches Z): the check above can fail");
    CHECK(cpu0->breaks.gen == BRK_GEN_NONE, "the torn copy is not kept");
    CHECK(hv_breaks.entry[0].hits == 0, "nothing counted from it");
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0x2222, 0x1111) == -1, "Z: B does not match it");
    CHECK(cpu0->breaks.gen == hv_breaks.generation, "B is compiled at the next exit");
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0x1111, 0x2222) == 0, "B fires");
}

/* A tool before issue 16 keeps no generation (0): the table is decoded at every exit, after its kinds. */
static void test_generation_zero(void)
{
    reset();
    hv_breaks.generation = 0;
    write_entry(0, A);
    hv_breaks.kinds = 1u << HV_EXIT_CPUID;
    rearm();
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0x1111, 0) == 0, "gen 0: A fires");
    CHECK(cpu0->breaks.gen == BRK_GEN_NONE, "gen 0: nothing kept");
    disarm();
    write_entry(0, B);
    rearm();
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0x1111, 0) == -1, "gen 0: the rewrite is seen at once");
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0, 0x2222) == 0, "gen 0: B fires");
    hv_breaks.kinds = 1u << HV_EXIT_MSR_READ;
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0, 0x2222) == -1, "gen 0: the kinds mask rejects first");
}

static void test_hits_ignore_trace_cpu_regs(void)
{
    reset();
    struct hv_break t = cond(0, 5), b = cond(0, 5), other = cond(0, 5);
    t.flags = HV_BRK_TRACE;
    b.ignore = 2;
    other.cpu = 1;
    disarm();
    write_entry(0, t);
    write_entry(1, b);
    write_entry(2, other);
    bump();
    rearm();
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 5, 0) == -1, "hit 1 ignored");
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 5, 0) == -1, "hit 2 ignored");
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 5, 0) == 1, "hit 3 stops at entry 1");
    CHECK(hv_breaks.entry[0].hits == 3 && hv_breaks.entry[1].hits == 3, "the tracepoint counts every hit too");
    CHECK(hv_breaks.entry[2].hits == 0, "entry 2 is cpu 1's");
    CHECK(exit_on(cpu1, regs1, HV_EXIT_CPUID, 5, 0) == 1, "cpu 1: entry 1 first");
    CHECK(hv_breaks.entry[2].hits == 0, "cpu 1 stopped at entry 1: entry 2 not reached");
    publish(1, (struct hv_break){ 0 });
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 5, 0) == -1, "entry 1 deleted: cpu 0 only traces");
    CHECK(exit_on(cpu1, regs1, HV_EXIT_CPUID, 5, 0) == 2, "cpu 1: entry 2");

    /* No GPR frame (an exit before the first handled one): a GPR test does not hold, nothing is kept. */
    reset();
    publish(0, cond(0, 0));
    CHECK(exit_on(cpu0, NULL, HV_EXIT_CPUID, 0, 0) == -1, "no frame: rax == 0 does not hold");
    CHECK(cpu0->breaks.gen == BRK_GEN_NONE, "no frame: the form without GPR tests is not kept");
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0, 0) == 0, "with a frame it does");
}

/*
 * Two CPUs match at once; the one that stops second is parked until gdb resumes, and the tool may delete or
 * rewrite the table meanwhile (tests/integration/test_gdbstub_live.py met it on Bochs: a deleted entry's
 * hit reported after the new table's arming). The snapshot stands for the time parked: break_hit() then
 * drops the hit, so last_hit / last_cpu (written only just before hv_break_hit) stay the first CPU's.
 */
static bool rewrite_in_snapshot;
static void snapshot_parked(struct percpu *pc, u32 why)
{
    (void)pc;
    (void)why;
    if (rewrite_in_snapshot)
        publish(0, B);
}
static const struct hv_backend parked_backend = { .snapshot = snapshot_parked };

static void test_hit_of_a_rewritten_table_is_dropped(void)
{
    reset();
    virt_backend = &parked_backend;
    publish(0, A);
    struct hv_record rec = { .kind = HV_EXIT_CPUID };
    CHECK(exit_on(cpu0, regs0, HV_EXIT_CPUID, 0x1111, 0) == 0 && exit_on(cpu1, regs1, HV_EXIT_CPUID, 0x1111, 0) == 0,
          "A matches on both CPUs");
    break_hit(cpu0, 0, &rec);
    CHECK(hv_breaks.last_cpu == 0 && cpu0->breaks.hit_gen == hv_breaks.generation, "cpu 0 stops under A's table");
    rewrite_in_snapshot = true;
    break_hit(cpu1, 0, &rec);
    rewrite_in_snapshot = false;
    CHECK(hv_breaks.last_cpu == 0, "cpu 1's hit of A, parked while the tool wrote B, is dropped");
    CHECK(cpu1->breaks.hit_gen + 1 == hv_breaks.generation, "cpu 1 matched the generation before B's");
    CHECK(exit_on(cpu1, regs1, HV_EXIT_CPUID, 0, 0x2222) == 0, "B fires on cpu 1");
    break_hit(cpu1, 0, &rec);
    CHECK(hv_breaks.last_cpu == 1, "and stops it");
    virt_backend = NULL;
}

int main(void)
{
    cpu0 = calloc(1, sizeof(*cpu0));
    cpu1 = calloc(1, sizeof(*cpu1));
    cpu1->index = 1;
    test_ops_on_boundaries();
    test_random_tables();
    test_rewrite_never_fires_stale();
    test_torn_copy_is_dropped();
    test_generation_zero();
    test_hits_ignore_trace_cpu_regs();
    test_hit_of_a_rewritten_table_is_dropped();
    free(cpu0);
    free(cpu1);
    return check_summary();
}
