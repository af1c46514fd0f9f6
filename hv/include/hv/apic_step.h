/*
 * A store to the trapped xAPIC page by an instruction the MMIO decoder does not know: the guest's
 * APIC page is redirected in the stage-2 map to a scratch copy of the registers, the CPU executes
 * that one instruction (single-stepped: VT-x monitor trap flag, SDM Vol. 3C 26.5.2; SVM RFLAGS.TF
 * with the #DB intercept, APM Vol. 2 15.12), and what it changed in the copy is replayed as APIC
 * writes (apic_emul_mmio_write). Then the page is trapped again. One CPU at a time. An instruction
 * fetched from the page itself (code in the xAPIC page) is executed the same way: the copy holds the
 * bytes the registers read as, and the page itself never becomes writable or executable.
 */
#ifndef HV_APIC_STEP_H
#define HV_APIC_STEP_H

#include <hv/vcpu.h>
#include <hv/x86.h>

/*
 * May the instruction at this vCPU's CS:RIP, fetched from the xAPIC page, run (from the copy)? Only if
 * it begins in bytes 0-3 of a 16-byte register slot. An instruction fetch reads whole slots, and SDM
 * Vol. 3A 11.4.1 makes "any access that touches bytes 4 through 15 of an APIC register" undefined
 * ("hangs, incorrect results or unexpected exceptions"): an instruction that begins there gets #UD
 * (the caller injects it), one that begins in bytes 0-3 and runs on into them reads them as zeros (the
 * copy's reserved bytes). So code in the page runs a few instructions per slot at most, never a walk
 * through 4 KiB of single steps; the documented case (a RET in a register's low byte) works. The policy
 * holds for every instruction run from the page, because each is its own step: the page is redirected
 * for one instruction, and the next fetch faults again. So the instructions after which the CPU would
 * run on unstepped (MOV SS, POP SS, software interrupts, SYSCALL, SYSENTER) or wait inside the step
 * (HLT, MWAIT) get #UD too (apic_policy_fetch), with a line on the console saying which.
 */
bool apic_step_fetch_in_register(struct vcpu *v);
/*
 * Start: redirect the page (fetch: read and execute only, so that other CPUs' stores keep trapping;
 * a store: writable too), arm the vendor's single step. False if it cannot, or if this CPU already has
 * a step in flight (an instruction fetched from the page that stores to it: the caller decides).
 */
bool apic_step_begin(struct vcpu *v, bool fetch);
/*
 * This CPU has a step in flight (the next exit ends it). Inline with the other two checks every exit
 * makes (apic_step_cut, apic_step_hold_wait): one load each when no step is in flight (issue 18).
 */
extern u32 apic_step_hold;              /* a step is in flight: the other CPUs wait in the hypervisor */
static inline bool apic_step_active(const struct percpu *pc)
{
    return pc->apic_stepping;
}
/*
 * The step's own exit (monitor trap, or #DB where there is none). If the instruction made progress (RIP,
 * RCX/RSI/RDI or the copy changed) the step ends: the writes are replayed, the page trapped again, the
 * step disarmed; true. If not (the trap came before the instruction ran: Bochs delivers one left over
 * from the fault that cut the step before), it stays armed for one more try; false: deliver nothing.
 */
bool apic_step_trap(struct vcpu *v);
/*
 * Steps in a row ended without progress at this vCPU's RIP (STUCK_LIMIT): the caller reflects #UD
 * instead of stepping again (SDM Vol. 3A 11.4.1: undefined). The hypervisor never retries one access
 * forever (chaos seed 7 on Bochs did: 46,329 identical steps).
 */
bool apic_step_stuck(struct vcpu *v);
/*
 * An exit that is not the step's own (#DB / monitor trap) while this CPU has a step in flight: end the
 * step now. The stepped instruction may have faulted, or an event (an NMI kick) came first. What the
 * instruction wrote is replayed; if it did not complete, it runs again from the trapped page. A guest
 * handler must never run with the page redirected (it could run anything in the copy unpoliced: QEMU
 * TCG asserted on chaos code at byte 15 of slot 0x260): while a step is armed with RFLAGS.TF every
 * exception is intercepted (the back ends' step_arm; a faulting instruction clears TF into its handler,
 * SDM Vol. 3A 17.3.1.4) and reflected after the cut, and an event injected at the entry that would
 * start the step cuts it first (vcpu_exit_finish).
 */
void apic_step_cut_active(struct vcpu *v);
static inline void apic_step_cut(struct vcpu *v)
{
    if (apic_step_active(v->pc))
        apic_step_cut_active(v);
}
/*
 * The last thing before this CPU enters the guest (it clears percpu.in_root): while another CPU's step
 * is in flight, wait in the hypervisor (the stage-2 map is shared: the copy must be no other CPU's code).
 */
void apic_step_hold_wait_held(struct percpu *pc);
static inline void apic_step_hold_wait(struct percpu *pc)
{
    /* Dekker with the stepping CPU's hold_others (apic_step.c): in_root 0, then look at the hold. */
    __atomic_store_n(&pc->in_root, 0, __ATOMIC_SEQ_CST);
    /* a load after the SEQ_CST store's fence, as a SEQ_CST load is; no hold: the exit's last jump */
    if (!x86_equal32(&apic_step_hold, 0))
        apic_step_hold_wait_held(pc);
}

#endif
