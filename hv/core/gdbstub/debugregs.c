/*
 * The gdb stub's hardware breakpoints and watchpoints in the hypervisor (Z1, Z2, Z4; hw_slots.c): the
 * debug registers hold them while a CPU runs the hypervisor's exit path, the guest's own DR0-DR3 and DR6
 * the rest of the time.
 *
 * A VM exit leaves the host DR7 = 400H (SDM Vol. 3C 28.5.1; SVM's #VMEXIT disables the host's
 * breakpoints the same way), and DR0-DR3 and DR6 are never switched by VT-x (SVM switches DR6 and DR7
 * only, APM Vol. 2 15.5.1). So while any slot is used every exit starts by saving the guest's DR0-DR3
 * and DR6 and loading the stub's with DR7 (gdbstub_dr_exit_begin), and ends by disabling DR7 first,
 * then restoring the guest's (gdbstub_dr_exit_end): the guest sees its own values, its DR7 comes from
 * the VMCS / VMCB. The slots change only while every CPU is stopped; each CPU loads them at its next
 * exit. With no slot used an exit pays one load and a branch. Code outside the exit path (boot, a
 * parked CPU's wait) is not covered.
 */
#include <hv/gdbstub.h>
#include <hv/x86.h>

volatile u64 gdbstub_dr7;               /* DR7 of the used slots; 0: none used */
static const struct gdb_hw_slots *slots;        /* the stub's, as gdb set them last */

#define READ_DR(n, v) __asm__ volatile("mov %%dr" #n ", %0" : "=r"(v))
#define WRITE_DR(n, v) __asm__ volatile("mov %0, %%dr" #n : : "r"(v))

void gdbstub_dr_set(const struct gdb_hw_slots *h)
{
    bool any = false;
    for (u32 i = 0; i < GDB_HW_SLOTS; i++)
        any |= h->type[i] != 0;
    slots = h;
    __atomic_store_n(&gdbstub_dr7, any ? gdb_hw_dr7(h) : 0, __ATOMIC_RELEASE);
    for (u32 i = 0; i < cpu_count; i++)         /* their exits leave the fast paths (exit_fast.h) */
        if (cpus[i])
            cpus[i]->dr_armed = any;
}

void gdbstub_dr_load(struct percpu *pc)
{
    u64 *g = pc->guest_dr;
    READ_DR(0, g[0]);
    READ_DR(1, g[1]);
    READ_DR(2, g[2]);
    READ_DR(3, g[3]);
    READ_DR(6, g[4]);
    WRITE_DR(0, slots->addr[0]);
    WRITE_DR(1, slots->addr[1]);
    WRITE_DR(2, slots->addr[2]);
    WRITE_DR(3, slots->addr[3]);
    WRITE_DR(6, X86_DR6_INIT);
    pc->dr_swapped = true;
    WRITE_DR(7, gdbstub_dr7);
}

void gdbstub_dr_restore(struct percpu *pc)
{
    const u64 *g = pc->guest_dr;
    WRITE_DR(7, X86_DR7_INIT);          /* first: no hypervisor breakpoint on the guest's addresses */
    WRITE_DR(0, g[0]);
    WRITE_DR(1, g[1]);
    WRITE_DR(2, g[2]);
    WRITE_DR(3, g[3]);
    WRITE_DR(6, g[4]);
    pc->dr_swapped = false;
}

/*
 * A CPU keeps the slots it loaded until its next exit, so a stop can come from a slot gdb has changed
 * since: true only when this CPU's DRn and its DR7 fields (enable, R/W, LEN; SDM Vol. 3B 18.2.4) hold
 * the slot as it is now.
 */
bool gdbstub_dr_slot_current(u32 slot)
{
    u64 addr, dr7;
    switch (slot) {
    case 0: READ_DR(0, addr); break;
    case 1: READ_DR(1, addr); break;
    case 2: READ_DR(2, addr); break;
    default: READ_DR(3, addr); break;
    }
    READ_DR(7, dr7);
    u64 fields = 3ull << (2 * slot) | 0xfull << (16 + 4 * slot);
    return addr == slots->addr[slot] && (dr7 & fields) == (gdbstub_dr7 & fields);
}
