/* Single-stepping an undecodable xAPIC store against a copy of the page: see apic_step.h. */
#include <hv/apic_emul.h>
#include <hv/apic_policy.h>
#include <hv/apic_step.h>
#include <hv/backend.h>
#include <hv/console.h>
#include <hv/guest_mem.h>
#include <hv/lapic.h>
#include <hv/percpu.h>
#include <hv/spinlock.h>
#include <hv/stage2.h>
#include <hv/x86.h>

static spinlock_t step_lock;            /* held from begin to end: one redirected page at a time */
static u64 step_page;
static u8 scratch[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static u32 before[PAGE_SIZE / 16];
/*
 * The page after the xAPIC page, while the step runs: all ones, writes land here and are dropped.
 * An instruction fetched from the end of the APIC page may run into the next page; nothing answers
 * there on a PC (master abort: reads all ones, PCI Local Bus Specification 3.0, 3.3.3.1), and an
 * emulator's TCG cannot fetch an instruction that crosses from RAM (the scratch copy) into MMIO
 * (QEMU 7.2 translator_access asserts `phys_page != -1`). So the next page is RAM, read as FFh.
 */
static u8 beyond[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static struct stage2_walk beyond_was;
static bool beyond_mapped;

bool apic_step_fetch_in_register(struct vcpu *v)
{
    static u32 reports;
    u64 rip = v->ops->rip(v), gpa;
    u64 la = v->ops->code_bits(v) == 64 ? rip : (u32)(v->ops->seg_base(v, VCPU_CS) + rip);
    struct guest_paging pg;
    v->ops->paging(v, &pg);
    if (!guest_translate(&pg, la, &gpa) || !apic_emul_is_apic(gpa))
        return false;       /* the fetch began outside the page: it crosses into it from below */
    u32 at = (u32)(gpa & 15);
    if (at >= 4)
        return false;
    u8 slot[16] = { 0 };
    *(u32 *)slot = (u32)mmio_read32(apic_emul_page() + (gpa & (PAGE_SIZE - 16)));
    const char *why = apic_policy_fetch(slot + at, 16 - at, v->ops->code_bits(v) == 64);
    if (why && __atomic_fetch_add(&reports, 1, __ATOMIC_RELAXED) < 8)
        printk("CPU %u: fetch from the xAPIC page at RIP 0x%lx: %s: #UD\n", v->pc->index, rip, why);
    return !why;
}

/*
 * The step in flight: where it began and what a completed instruction changes even when it stores
 * nothing new (a REP iteration: RCX, RSI, RDI). A step that ends there with none of it changed made no
 * progress: the instruction did not run (an event came first, or Bochs delivered a single-step trap
 * left over from the fault that cut the previous step before executing anything: chaos seed 7).
 */
static struct { u64 rip, rcx, rsi, rdi; u32 retried; } at_start;
/* Per CPU: the RIP where steps in a row ended without progress, and how many (apic_step_stuck). */
static struct { u64 rip; u32 count; } stuck[HV_MAX_CPUS];
#define STEP_RETRIES 1      /* an own trap without progress: the instruction gets one more chance in-step */
#define STUCK_LIMIT 8       /* steps without progress at one RIP before #UD (SDM 11.4.1: undefined) */

static void mark_start(struct vcpu *v)
{
    at_start.rip = v->ops->rip(v);
    at_start.rcx = vcpu_gpr(v, 1);
    at_start.rsi = vcpu_gpr(v, 6);
    at_start.rdi = vcpu_gpr(v, 7);
    at_start.retried = 0;
}

static bool copy_changed(void)
{
    for (u32 off = 0; off < PAGE_SIZE; off += 16)
        if (*(volatile u32 *)(scratch + off) != before[off / 16])
            return true;
    return false;
}

static bool progressed(struct vcpu *v)
{
    return v->ops->rip(v) != at_start.rip || vcpu_gpr(v, 1) != at_start.rcx || vcpu_gpr(v, 6) != at_start.rsi ||
           vcpu_gpr(v, 7) != at_start.rdi || copy_changed();
}

static void note_progress(struct vcpu *v, bool progress)
{
    u32 cpu = v->pc->index;
    if (progress)
        stuck[cpu].count = 0;
    else if (stuck[cpu].count && stuck[cpu].rip == at_start.rip)
        stuck[cpu].count++;
    else
        stuck[cpu].rip = at_start.rip, stuck[cpu].count = 1;
}

bool apic_step_stuck(struct vcpu *v)
{
    u32 cpu = v->pc->index;
    if (stuck[cpu].count < STUCK_LIMIT || stuck[cpu].rip != v->ops->rip(v))
        return false;
    stuck[cpu].count = 0;
    printk("CPU %u: APIC step at RIP 0x%lx: %u steps in a row without progress: #UD reflected\n", cpu,
           v->ops->rip(v), STUCK_LIMIT);
    return true;
}

static void step_end(struct vcpu *v);

/*
 * The stage-2 map is one for all CPUs: while the page is redirected, any CPU in the guest could fetch
 * from the copy, unstepped and unpoliced (and run on into the page after it, which QEMU's TCG asserted
 * on when the step ended under it). So every other CPU that may run guest code is brought into the
 * hypervisor (an NMI kick, sent again once the last one was consumed, which in VT-x root operation
 * brings no exit; never two in flight, percpu.h) and kept there (apic_step_hold_wait) until the step ends. A one-CPU guest pays nothing.
 */
u32 apic_step_hold;                     /* other CPUs must stay in the hypervisor (apic_step.h) */
#define REKICK_SPINS (1u << 20)

static void hold_others(struct vcpu *v)
{
    __atomic_store_n(&apic_step_hold, 1, __ATOMIC_SEQ_CST);
    for (u32 i = 0; i < cpu_count; i++) {
        struct percpu *t = cpus[i];
        if (!t || t == v->pc)
            continue;
        for (u32 spins = 0; t->launched && !__atomic_load_n(&t->in_root, __ATOMIC_SEQ_CST) &&
                            apic_emul_may_run_guest(i); spins++) {
            if (spins % REKICK_SPINS == 0 && percpu_kick_needs_nmi(t))
                lapic_send_ipi(t->apic_id, ICR_NMI);
            __asm__ volatile("pause");
        }
    }
}

/*
 * apic_step_hold_wait's slow path: the inline part stored in_root 0 and saw the hold. Dekker with
 * hold_others: either it sees in_root 0 (and kicks), or this CPU sees the hold.
 */
void apic_step_hold_wait_held(struct percpu *pc)
{
    for (;;) {
        if (apic_step_active(pc))
            return;
        __atomic_store_n(&pc->in_root, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&apic_step_hold, __ATOMIC_ACQUIRE) && !apic_step_active(pc))
            __asm__ volatile("pause");
        __atomic_store_n(&pc->in_root, 0, __ATOMIC_SEQ_CST);
        if (!__atomic_load_n(&apic_step_hold, __ATOMIC_SEQ_CST))
            return;
    }
}

bool apic_step_begin(struct vcpu *v, bool fetch)
{
    if (!v->ops->step_arm || !apic_emul_page() || apic_step_active(v->pc))
        return false;
    spin_lock(&step_lock);
    hold_others(v);
    step_page = apic_emul_page();
    /* The copy: every 32-bit register at its 16-byte slot (SDM Vol. 3A 11.4.1, Table 11-1), the rest 0
     * (again each time: a step may have stored into the reserved bytes, which nothing replays). */
    memset(scratch, 0, sizeof(scratch));
    for (u32 off = 0; off < PAGE_SIZE; off += 16) {
        before[off / 16] = mmio_read32(step_page + off);
        *(volatile u32 *)(scratch + off) = before[off / 16];
    }
    /*
     * Executable: the step may be an instruction fetched from the page itself (exit_stage2_fault). A
     * fetch's copy is not writable, so other CPUs' stores meanwhile still trap (they would land in the
     * copy and be replayed as this CPU's); a store's must be (the only way to see what it wrote).
     */
    u8 perms = fetch ? STAGE2_R | STAGE2_X : STAGE2_RWX;
    if (stage2_remap(virt_backend->stage2, step_page, (u64)(uintptr_t)scratch, perms)) {
        __atomic_store_n(&apic_step_hold, 0, __ATOMIC_RELEASE);
        spin_unlock(&step_lock);
        return false;
    }
    u64 next = step_page + PAGE_SIZE;
    memset(beyond, 0xff, sizeof(beyond));
    beyond_mapped = stage2_walk(virt_backend->stage2, next, &beyond_was) == 0 &&
                    stage2_remap(virt_backend->stage2, next, (u64)(uintptr_t)beyond, STAGE2_RWX) == 0;
    v->ops->stage2_flush(v);
    mark_start(v);
    v->pc->apic_stepping = 1;
    if (v->ops->step_arm(v, true))
        return true;
    step_end(v);                        /* cannot step: nothing ran, nothing to replay */
    return false;
}

static void step_end(struct vcpu *v)
{
    note_progress(v, progressed(v));
    v->ops->step_arm(v, false);
    /* Trap the page again first: a later store by another CPU must fault, not land in the copy. */
    stage2_remap(virt_backend->stage2, step_page, step_page, STAGE2_R);
    if (beyond_mapped)
        stage2_remap(virt_backend->stage2, step_page + PAGE_SIZE, beyond_was.hpa, beyond_was.perms);
    v->ops->stage2_flush(v);
    u32 replayed = 0;
    for (u32 off = 0; off < PAGE_SIZE; off += 16) {
        u32 now = *(volatile u32 *)(scratch + off);
        if (now != before[off / 16]) {
            apic_emul_guest_store(v, off, 4, now);
            replayed++;
        }
    }
    v->rec->arg0 = replayed;
    v->pc->apic_stepping = 0;
    __atomic_store_n(&apic_step_hold, 0, __ATOMIC_RELEASE);
    spin_unlock(&step_lock);
}

bool apic_step_trap(struct vcpu *v)
{
    if (!progressed(v) && at_start.retried < STEP_RETRIES) {
        at_start.retried++;             /* still armed (MTF, or TF in RFLAGS): run it again, in-step */
        return false;
    }
    step_end(v);
    return true;
}

void apic_step_cut_active(struct vcpu *v)
{
    step_end(v);
}
