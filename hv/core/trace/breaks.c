/*
 * Exit breakpoints (abi.h struct hv_break_config), evaluated here on every exit so that gdb only
 * ever stops at hv_break_hit(). With nothing armed the cost is one load and a branch; an exit of a
 * kind no armed entry can match costs a second load and a bit test (the tools keep hv_breaks.kinds);
 * conditions (terms ANDed) are evaluated only after the cheap criteria matched. Tracepoints and
 * ignored hits are counted here and never stop.
 */
#include <hv/abi.h>
#include <hv/backend.h>
#include <hv/breaks.h>
#include <hv/discovery.h>

struct hv_break_config hv_breaks __attribute__((aligned(64)));

/* Record fields a condition can test, by operand number - HV_BRK_OPD_GPRS. */
static const u8 record_operand_offset[HV_BRK_OPD_COUNT - HV_BRK_OPD_GPRS] = {
    [HV_BRK_OPD_ARG0 - HV_BRK_OPD_GPRS] = __builtin_offsetof(struct hv_record, arg0),
    [HV_BRK_OPD_ARG1 - HV_BRK_OPD_GPRS] = __builtin_offsetof(struct hv_record, arg1),
    [HV_BRK_OPD_QUAL - HV_BRK_OPD_GPRS] = __builtin_offsetof(struct hv_record, qual),
    [HV_BRK_OPD_GPA - HV_BRK_OPD_GPRS] = __builtin_offsetof(struct hv_record, gpa),
    [HV_BRK_OPD_RIP - HV_BRK_OPD_GPRS] = __builtin_offsetof(struct hv_record, rip),
    [HV_BRK_OPD_CR3 - HV_BRK_OPD_GPRS] = __builtin_offsetof(struct hv_record, cr3),
};

static bool term_holds(const struct hv_break_term *t, const struct percpu *pc, const struct hv_record *rec)
{
    u64 x;
    if (t->operand < HV_BRK_OPD_GPRS) {
        if (!pc->exit_regs)
            return false;
        x = pc->exit_regs[t->operand];
    } else if (t->operand < HV_BRK_OPD_COUNT) {
        x = *(const u64 *)((const u8 *)rec + record_operand_offset[t->operand - HV_BRK_OPD_GPRS]);
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

static bool matches(const struct hv_break *b, const struct percpu *pc, const struct hv_record *rec)
{
    if (!((b->kind == HV_BRK_ANY || b->kind == rec->kind) &&
          (b->reason == HV_BRK_ANY || b->reason == rec->reason) &&
          (b->cpu == HV_BRK_ANY || b->cpu == pc->index) &&
          (!(b->flags & HV_BRK_MATCH_ARG0) || b->arg0 == rec->arg0) &&
          (!(b->flags & HV_BRK_MATCH_GPA) || (rec->gpa >= b->gpa_lo && rec->gpa <= b->gpa_hi))))
        return false;
    u32 n = b->nterms < HV_BREAK_TERMS ? b->nterms : HV_BREAK_TERMS;
    for (u32 i = 0; i < n; i++)
        if (!term_holds(&b->term[i], pc, rec))
            return false;
    return true;
}

int break_match_table(const struct percpu *pc, const struct hv_record *rec)
{
    u32 armed = __atomic_load_n(&hv_breaks.armed, __ATOMIC_RELAXED);
    /* Tools fill entries from 0: stop once 'armed' enabled entries were looked at (each exit counts). */
    for (int i = 0; armed && i < HV_BREAK_MAX; i++) {
        struct hv_break *b = &hv_breaks.entry[i];
        if (!b->enabled)
            continue;
        armed--;
        if (!matches(b, pc, rec))
            continue;
        /* Counted once per matching exit, by whichever CPU: atomically, tracepoints fire on all. */
        u64 hits = __atomic_add_fetch(&b->hits, 1, __ATOMIC_RELAXED);
        if (!(b->flags & HV_BRK_TRACE) && hits > b->ignore)
            return i;
    }
    return -1;
}

/*
 * gdb's breakpoint lives here. noinline + an empty asm keep the call and the symbol; the arguments
 * are in RDI/RSI/RDX for the extension to read ($rdi = CPU, $rsi = entry, $rdx = record).
 */
__attribute__((noinline)) void hv_break_hit(u32 cpu, u32 entry, const struct hv_record *rec)
{
    __asm__ volatile("" : : "r"(cpu), "r"(entry), "r"(rec) : "memory");
}

void break_hit(struct percpu *pc, int entry, const struct hv_record *rec)
{
    hv_breaks.last_hit = (u32)entry;
    hv_breaks.last_cpu = pc->index;
    if (virt_backend && virt_backend->snapshot)
        virt_backend->snapshot(pc, HV_SNAP_BREAK);
    hv_break_hit(pc->index, (u32)entry, rec);
}
