/*
 * The exit-break table pre-decoded for one CPU (break_cache.h says what a check is and why). Pure: no
 * hypervisor state, so tests/native/test_breaks.c checks it against the table's plain meaning (abi.h).
 */
#include <hv/break_cache.h>

#define ALL ~0ull

/* Record fields a condition can test, by operand number - HV_BRK_OPD_GPRS. */
static const u8 record_operand_offset[HV_BRK_OPD_COUNT - HV_BRK_OPD_GPRS] = {
    [HV_BRK_OPD_ARG0 - HV_BRK_OPD_GPRS] = __builtin_offsetof(struct hv_record, arg0),
    [HV_BRK_OPD_ARG1 - HV_BRK_OPD_GPRS] = __builtin_offsetof(struct hv_record, arg1),
    [HV_BRK_OPD_QUAL - HV_BRK_OPD_GPRS] = __builtin_offsetof(struct hv_record, qual),
    [HV_BRK_OPD_GPA - HV_BRK_OPD_GPRS] = __builtin_offsetof(struct hv_record, gpa),
    [HV_BRK_OPD_RIP - HV_BRK_OPD_GPRS] = __builtin_offsetof(struct hv_record, rip),
    [HV_BRK_OPD_CR3 - HV_BRK_OPD_GPRS] = __builtin_offsetof(struct hv_record, cr3),
};

/* The reason (u16 at offset 20) as bits 32-47 of the aligned u64 at offset 16 (x86 is little-endian). */
#define REASON_WORD  16u
#define REASON_SHIFT 32u
_Static_assert(__builtin_offsetof(struct hv_record, reason) == REASON_WORD + REASON_SHIFT / 8, "reason");

struct builder {
    struct brk_entry *e;
    u32 n;              /* checks so far */
    bool never;         /* a check no exit can pass: the entry is dropped */
};

/* Add "x & mask in [lo, lo + span]", ordered by span (narrowest first); an always-true check is omitted. */
static void add(struct builder *b, u32 gpr, u32 off, u64 mask, u64 lo, u64 span)
{
    if (mask == ALL && span == ALL)
        return;
    struct brk_entry *e = b->e;
    u32 k = b->n++;
    while (k && e->check[k - 1].span > span) {
        e->check[k] = e->check[k - 1];
        k--;
    }
    e->check[k] = (struct brk_check){ .mask = mask, .lo = lo, .span = span, .off = (u16)off, .gpr = (u16)gpr };
}

/* One condition term (abi.h: operand op value, unsigned) as an interval check. */
static void add_term(struct builder *b, const struct hv_break_term *t, bool have_regs)
{
    u32 gpr, off;
    u64 v = t->value;
    if (t->operand < HV_BRK_OPD_GPRS) {
        if (!have_regs) {
            b->never = true;
            return;
        }
        gpr = 1;
        off = t->operand * 8u;
    } else if (t->operand < HV_BRK_OPD_COUNT) {
        gpr = 0;
        off = record_operand_offset[t->operand - HV_BRK_OPD_GPRS];
    } else {
        b->never = true;
        return;
    }
    switch (t->op) {
    case HV_BRK_OP_EQ: add(b, gpr, off, ALL, v, 0); break;
    case HV_BRK_OP_NE: add(b, gpr, off, ALL, v + 1, ALL - 1); break;    /* wraps: every value but v */
    case HV_BRK_OP_LT: v ? add(b, gpr, off, ALL, 0, v - 1) : (void)(b->never = true); break;
    case HV_BRK_OP_LE: add(b, gpr, off, ALL, 0, v); break;
    case HV_BRK_OP_GT: v != ALL ? add(b, gpr, off, ALL, v + 1, ALL - (v + 1)) : (void)(b->never = true); break;
    case HV_BRK_OP_GE: add(b, gpr, off, ALL, v, ALL - v); break;
    case HV_BRK_OP_TEST: v ? add(b, gpr, off, v, 1, v - 1) : (void)(b->never = true); break;   /* x & v in [1, v] */
    default: b->never = true; break;
    }
}

/* Entry t as checks in e; false when it can never match an exit on this CPU. */
static bool compile_entry(struct brk_entry *e, const struct hv_break *t, u32 cpu, bool have_regs)
{
    struct builder b = { .e = e, .n = 0, .never = false };
    if (t->cpu != HV_BRK_ANY && t->cpu != cpu)
        return false;
    if (t->reason != HV_BRK_ANY) {
        if (t->reason > 0xffff)
            return false;
        add(&b, 0, REASON_WORD, 0xffffull << REASON_SHIFT, (u64)t->reason << REASON_SHIFT, 0);
    }
    if (t->flags & HV_BRK_MATCH_ARG0)
        add(&b, 0, __builtin_offsetof(struct hv_record, arg0), ALL, t->arg0, 0);
    if (t->flags & HV_BRK_MATCH_GPA) {
        if (t->gpa_hi < t->gpa_lo)
            return false;
        add(&b, 0, __builtin_offsetof(struct hv_record, gpa), ALL, t->gpa_lo, t->gpa_hi - t->gpa_lo);
    }
    u32 n = t->nterms < HV_BREAK_TERMS ? t->nterms : HV_BREAK_TERMS;
    for (u32 i = 0; i < n && !b.never; i++)
        add_term(&b, &t->term[i], have_regs);
    if (b.never)
        return false;
    if (!b.n)   /* no criterion but the kind: one check every exit passes (x & 0 in [0, 0]) */
        e->check[b.n++] = (struct brk_check){ .mask = 0, .lo = 0, .span = 0 };
    for (u32 k = 0; k < b.n; k++)
        e->check[k].last = k == b.n - 1;
    return true;
}

void brk_compile(struct brk_cache *c, const struct hv_break tab[HV_BREAK_MAX], u32 cpu, bool have_regs)
{
    memset(c->by_kind, 0, sizeof(c->by_kind));
    for (u32 i = 0; i < HV_BREAK_MAX; i++) {
        const struct hv_break *t = &tab[i];
        if (!t->enabled || !compile_entry(&c->entry[i], t, cpu, have_regs))
            continue;
        c->stops[i] = !(t->flags & HV_BRK_TRACE);
        c->ignore[i] = t->ignore;
        if (t->kind == HV_BRK_ANY) {
            for (u32 k = 0; k < ARRAY_SIZE(c->by_kind); k++)
                c->by_kind[k] |= (u8)(1u << i);
        } else if (t->kind < ARRAY_SIZE(c->by_kind)) {
            c->by_kind[t->kind] |= (u8)(1u << i);
        }   /* a kind above 255 names no record's (u8) kind: never */
    }
}
