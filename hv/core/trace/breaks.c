/*
 * Exit breakpoints (abi.h struct hv_break_config), evaluated on every exit so that gdb only ever stops at
 * hv_break_hit(). The fast path is inline (breaks.h break_match) over this CPU's pre-decoded copy of the
 * table (break_cache.h, made by break_compile.c); here are its slow paths: compiling a table this CPU has
 * not seen (a new hv_break_config.generation), and counting / stopping for an entry that matched.
 * Tracepoints and ignored hits are counted here and never stop.
 */
#include <hv/abi.h>
#include <hv/backend.h>
#include <hv/breaks.h>
#include <hv/discovery.h>
#include <hv/spinlock.h>

struct hv_break_config hv_breaks __attribute__((aligned(64)));

void break_init_cpu(struct percpu *pc)
{
    pc->breaks.gen = BRK_GEN_NONE;
}

/*
 * Whether the table compiled from generation 'gen' is still the published one. Read in the order abi.h's
 * protocol needs: 'armed' first (a writer clears it before touching any entry), then the generation (a
 * writer bumps it after the entries, before re-arming). The acquire fence keeps every earlier read of the
 * table before these (x86 keeps loads in order, SDM Vol. 3A 10.2.2; the fence stops the compiler).
 */
static bool table_still(u32 gen)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&hv_breaks.armed, __ATOMIC_ACQUIRE) &&
           __atomic_load_n(&hv_breaks.generation, __ATOMIC_ACQUIRE) == gen;
}

/*
 * The lowest entry of 'cand' holds for this exit: count it and every later matching one until one stops
 * (not a tracepoint, past its ignore count). An entry is counted only if the table it was compiled from
 * is still published: one a tool disarmed (to rewrite or delete it) after this exit evaluated it neither
 * counts nor fires.
 */
static int break_match_from(struct percpu *pc, const struct hv_record *rec, u32 cand, u32 gen)
{
    const struct brk_cache *c = &pc->breaks;
    for (int i; cand && (i = brk_first_match(c, cand, rec, pc->exit_regs)) >= 0; cand &= ~((2u << i) - 1)) {
        if (!table_still(gen))
            return -1;
        /* Counted once per matching exit, by whichever CPU: atomically, tracepoints fire on all. */
        u64 hits = __atomic_add_fetch(&hv_breaks.entry[i].hits, 1, __ATOMIC_RELAXED);
        if (c->stops[i] && hits > c->ignore[i]) {
            pc->breaks.hit_gen = gen;
            return i;
        }
    }
    return -1;
}

/*
 * This CPU has not compiled the published generation: copy the table (each field read once), compile
 * it, and keep it only if the table did not change meanwhile (seqlock-style, abi.h). Generation 0 is a
 * tool that does not publish generations (before issue 16): its table is compiled on every exit, after
 * the kinds mask it keeps. Without a GPR frame (an exit before the first handled one) entries testing a
 * GPR cannot match, so that form is not kept either.
 */
static int break_match_new_table(struct percpu *pc, const struct hv_record *rec)
{
    struct brk_cache *c = &pc->breaks;
    u32 gen = __atomic_load_n(&hv_breaks.generation, __ATOMIC_ACQUIRE);
    if (!gen) {
        u32 kinds = __atomic_load_n(&hv_breaks.kinds, __ATOMIC_RELAXED);
        if (kinds && !((kinds >> (rec->kind & 31)) & 1))
            return -1;
    }
    struct hv_break tab[HV_BREAK_MAX];
    memcpy(tab, hv_breaks.entry, sizeof(tab));
    bool have_regs = pc->exit_regs != NULL;
    brk_compile(c, tab, pc->index, have_regs);
    if (!table_still(gen)) {
        /* Rewritten under us: this exit counts as before the new table, while it was disarmed. */
        c->gen = BRK_GEN_NONE;
        return -1;
    }
    c->gen = gen && gen != BRK_GEN_NONE && have_regs ? gen : BRK_GEN_NONE;
    u32 cand = c->by_kind[rec->kind];
    int i = cand ? brk_first_match(c, cand, rec, pc->exit_regs) : -1;
    return i < 0 ? -1 : break_match_from(pc, rec, cand >> i << i, gen);
}

int break_match_armed(struct percpu *pc, const struct hv_record *rec)
{
    u32 gen = pc->breaks.gen;
    if (__atomic_load_n(&hv_breaks.generation, __ATOMIC_ACQUIRE) != gen)
        return break_match_new_table(pc, rec);
    u32 cand = pc->breaks.by_kind[rec->kind];
    int i = cand ? brk_first_match(&pc->breaks, cand, rec, pc->exit_regs) : -1;
    return i < 0 ? -1 : break_match_from(pc, rec, cand >> i << i, gen);
}

/*
 * gdb's breakpoint lives here. noinline + an empty asm keep the call and the symbol; the arguments
 * are in RDI/RSI/RDX/RCX for the extension to read ($rdi = CPU, $rsi = entry, $rdx = record, $rcx = the
 * table generation the match was made under: gdbext drops a hit of a table it has rewritten since).
 */
__attribute__((noinline)) void hv_break_hit(u32 cpu, u32 entry, const struct hv_record *rec, u32 gen)
{
    __asm__ volatile("" : : "r"(cpu), "r"(entry), "r"(rec), "r"(gen) : "memory");
}

/* last_hit and last_cpu are one fact: CPUs hitting at once must not pair one's entry with another's CPU. */
static spinlock_t last_lock;

/*
 * A CPU may be parked between its match and its stop (another CPU's hit stopped the VM first, both
 * matching at once), and a tool may delete or rewrite the entry meanwhile: the hit is then of a table
 * nobody holds any more, and is dropped here, after the snapshot (the long step). One parked in the few
 * instructions after this check still reaches hv_break_hit() with its generation, which gdb checks.
 */
void break_hit(struct percpu *pc, int entry, const struct hv_record *rec)
{
    u32 gen = pc->breaks.hit_gen;
    if (virt_backend && virt_backend->snapshot)
        virt_backend->snapshot(pc, HV_SNAP_BREAK);
    if (!table_still(gen))
        return;
    spin_lock(&last_lock);
    hv_breaks.last_hit = (u32)entry;
    hv_breaks.last_cpu = pc->index;
    spin_unlock(&last_lock);
    hv_break_hit(pc->index, (u32)entry, rec, gen);
}
