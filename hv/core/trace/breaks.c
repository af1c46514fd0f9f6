/*
 * Exit breakpoints (abi.h struct hv_break_config), evaluated here on every exit so that gdb only
 * ever stops at hv_break_hit(). With nothing armed the cost is one load and a branch.
 */
#include <hv/abi.h>
#include <hv/backend.h>
#include <hv/breaks.h>
#include <hv/discovery.h>

struct hv_break_config hv_breaks __attribute__((aligned(64)));

static bool matches(const struct hv_break *b, const struct percpu *pc, const struct hv_record *rec)
{
    return b->enabled && (b->kind == HV_BRK_ANY || b->kind == rec->kind) &&
           (b->reason == HV_BRK_ANY || b->reason == rec->reason) &&
           (b->cpu == HV_BRK_ANY || b->cpu == pc->index) &&
           (!(b->flags & HV_BRK_MATCH_ARG0) || b->arg0 == rec->arg0) &&
           (!(b->flags & HV_BRK_MATCH_GPA) || (rec->gpa >= b->gpa_lo && rec->gpa <= b->gpa_hi));
}

int break_match(const struct percpu *pc, const struct hv_record *rec)
{
    u32 armed = __atomic_load_n(&hv_breaks.armed, __ATOMIC_RELAXED);
    /* Tools fill entries from 0: stop once 'armed' enabled entries were looked at (each exit counts). */
    for (int i = 0; armed && i < HV_BREAK_MAX; i++) {
        if (!hv_breaks.entry[i].enabled)
            continue;
        if (matches(&hv_breaks.entry[i], pc, rec))
            return i;
        armed--;
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
    hv_breaks.entry[entry].hits++;
    hv_breaks.last_hit = (u32)entry;
    hv_breaks.last_cpu = pc->index;
    if (virt_backend && virt_backend->snapshot)
        virt_backend->snapshot(pc, HV_SNAP_BREAK);
    hv_break_hit(pc->index, (u32)entry, rec);
}
