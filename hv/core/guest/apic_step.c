/* Single-stepping an undecodable xAPIC store against a copy of the page: see apic_step.h. */
#include <hv/apic_emul.h>
#include <hv/apic_step.h>
#include <hv/backend.h>
#include <hv/console.h>
#include <hv/guest_mem.h>
#include <hv/spinlock.h>
#include <hv/stage2.h>
#include <hv/x86.h>

static spinlock_t step_lock;            /* held from begin to end: one redirected page at a time */
static volatile u32 step_cpu = ~0u;
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
    u64 rip = v->ops->rip(v), gpa;
    u64 la = v->ops->code_bits(v) == 64 ? rip : (u32)(v->ops->seg_base(v, VCPU_CS) + rip);
    struct guest_paging pg;
    v->ops->paging(v, &pg);
    if (!guest_translate(&pg, la, &gpa) || !apic_emul_is_apic(gpa))
        return false;       /* the fetch began outside the page: it crosses into it from below */
    return (gpa & 15) < 4;
}

bool apic_step_active(const struct percpu *pc)
{
    return __atomic_load_n(&step_cpu, __ATOMIC_ACQUIRE) == pc->index;
}

bool apic_step_begin(struct vcpu *v, bool fetch)
{
    if (!v->ops->step_arm || !apic_emul_page() || apic_step_active(v->pc))
        return false;
    spin_lock(&step_lock);
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
        spin_unlock(&step_lock);
        return false;
    }
    u64 next = step_page + PAGE_SIZE;
    memset(beyond, 0xff, sizeof(beyond));
    beyond_mapped = stage2_walk(virt_backend->stage2, next, &beyond_was) == 0 &&
                    stage2_remap(virt_backend->stage2, next, (u64)(uintptr_t)beyond, STAGE2_RWX) == 0;
    v->ops->stage2_flush(v);
    __atomic_store_n(&step_cpu, v->pc->index, __ATOMIC_RELEASE);
    if (v->ops->step_arm(v, true))
        return true;
    apic_step_end(v);                   /* cannot step: nothing ran, nothing to replay */
    return false;
}

void apic_step_end(struct vcpu *v)
{
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
    __atomic_store_n(&step_cpu, ~0u, __ATOMIC_RELEASE);
    spin_unlock(&step_lock);
}

void apic_step_cut(struct vcpu *v)
{
    if (apic_step_active(v->pc))
        apic_step_end(v);
}
