/*
 * A CPU parked in host mode (an AP the guest has not started, or one in wait-for-SIPI after the
 * guest's INIT) sleeps in HLT and costs its host nothing; the CPU that releases it sends it a fixed
 * IPI with the hypervisor's own vector. Only that vector's priority class passes the parked CPU's TPR,
 * so interrupts meant for the guest stay pending in its APIC until the guest runs there.
 */
#ifndef HV_PARK_H
#define HV_PARK_H

#include <hv/percpu.h>

/* The wake-up IPI's vector: priority class 15, above the TPR a parked CPU sets (class 14). */
#define PARK_WAKE_VECTOR 0xf1

/* On the parked CPU, interrupts off: sleep until *word == value (another CPU stores it, then park_claim). */
void park_wait(struct percpu *pc, volatile u32 *word, u32 value);
/*
 * On the releasing CPU, after its store to the word park_wait watches: true when 't' sleeps (or is
 * about to) and the caller must send it a fixed IPI with PARK_WAKE_VECTOR. At most one caller per
 * park_wait gets true, and that park_wait does not return before the IPI arrived.
 */
bool park_claim(struct percpu *t);
/* From the IDT: an interrupt or NMI that reached a parked CPU, handled here (true) or not for parking. */
bool park_interrupt(struct percpu *pc, u64 vector);

#endif
