/*
 * Parked CPUs sleep in HLT (park.h). The waker and the sleeper meet on pc->park_idle, Dekker style:
 * the sleeper stores park_idle = 1 and then reads the word, the waker stores the word and then takes
 * park_idle (a locked exchange, a full barrier). Whichever comes second sees the other's store, so
 * either the sleeper sees the word and never sleeps, or the waker sees park_idle and sends the IPI.
 * STI's one-instruction interrupt shadow makes "sti; hlt" atomic (SDM Vol. 2B STI): an IPI that came
 * before the STI is taken in the HLT and ends it. The sleeper that finds the word changed takes
 * park_idle back; if a waker took it first, its IPI is on the way and is waited for here, with
 * interrupts still on, so it never arrives later in the guest.
 */
#include <hv/backend.h>
#include <hv/lapic.h>
#include <hv/park.h>
#include <hv/x86.h>

#define PARK_TPR 14                 /* CR8: classes 0-14 wait in the APIC; 15 (the wake vector) passes */
#define SPURIOUS_VECTOR 0xff        /* the SVR's reset vector, which the hypervisor keeps (SDM 11.9) */

/*
 * One HLT with interrupts on. Under SVM the host runs with GIF = 0, which holds interrupts whatever
 * IF says (APM Vol. 2 15.17): the back end opens GIF around the HLT and closes it again.
 */
static void sleep_once(struct percpu *pc)
{
    if (virt_backend->release)
        virt_backend->release();
    __asm__ volatile("sti; hlt; cli" ::: "memory");
    if (virt_backend->hold)
        virt_backend->hold();
    pc->park_checks++;
}

void park_wait(struct percpu *pc, volatile u32 *word, u32 value)
{
    /* An AP's APIC is software-disabled after INIT (SDM Vol. 3A 11.4.7.2) and takes no interrupt then. */
    u32 svr = lapic_read_svr();
    lapic_write_svr(svr | LAPIC_SVR_ENABLE);
    /*
     * Every LVT entry masked while parked, as a real INIT leaves them (SDM Vol. 3A 11.4.7.1); the
     * guest's come back after. An emulated INIT leaves the guest's: LINT0 in ExtINT mode brought the
     * 8259's vector 8 into the host's HLT below (ExtINT ignores the TPR), taken as a #DF (chaos seed 1).
     */
    u32 lvt[LAPIC_LVT_MAX], lvt_saved[LAPIC_LVT_MAX], nlvt = lapic_lvt_regs(lvt);
    for (u32 i = 0; i < nlvt; i++) {
        lvt_saved[i] = lapic_read(lvt[i]);
        lapic_write(lvt[i], lvt_saved[i] | LAPIC_LVT_MASKED);
    }
    u64 tpr = read_cr8();
    write_cr8(PARK_TPR);
    pc->park_woken = 0;
    pc->parked = 1;
    __atomic_store_n(&pc->park_idle, 1, __ATOMIC_SEQ_CST);
    pc->park_checks++;
    while (__atomic_load_n(word, __ATOMIC_SEQ_CST) != value)
        sleep_once(pc);
    if (!__atomic_exchange_n(&pc->park_idle, 0, __ATOMIC_SEQ_CST))
        while (!__atomic_load_n(&pc->park_woken, __ATOMIC_ACQUIRE))
            sleep_once(pc);
    pc->parked = 0;
    write_cr8(tpr);
    for (u32 i = 0; i < nlvt; i++)
        lapic_write(lvt[i], lvt_saved[i]);
    lapic_write_svr(svr);                   /* the guest finds its APIC as it left it */
}

bool park_claim(struct percpu *t)
{
    return __atomic_exchange_n(&t->park_idle, 0, __ATOMIC_SEQ_CST) != 0;
}

bool park_interrupt(struct percpu *pc, u64 vector)
{
    if (!pc->parked)
        return false;
    if (vector == PARK_WAKE_VECTOR) {
        lapic_eoi();
        __atomic_store_n(&pc->park_woken, 1, __ATOMIC_RELEASE);
        return true;
    }
    /*
     * A spurious interrupt needs no EOI (SDM Vol. 3A 11.9). An NMI (SVM opens GIF for the HLT) is
     * dropped, as a CPU in wait-for-SIPI does not take it, and INIT dropped the NMIs held before.
     */
    if (vector == SPURIOUS_VECTOR)
        return true;
    if (vector == 2) {
        __atomic_store_n(&pc->kicked, 0, __ATOMIC_RELEASE);    /* a kick's NMI arrived: none in flight now */
        return true;
    }
    /*
     * Any other interrupt is the guest's (its I/O APIC or an MSI aimed at this CPU; the LVT entries are
     * masked): a CPU in wait-for-SIPI takes none, so it is acknowledged and dropped. Vectors 0-31 are
     * not taken for interrupts here: the frame of one carrying an error code cannot be told apart.
     */
    if (vector >= 32) {
        lapic_eoi();
        return true;
    }
    return false;
}
