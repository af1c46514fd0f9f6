/* Local APIC access (xAPIC MMIO or x2APIC MSRs, whichever the firmware left enabled). */
#ifndef HV_LAPIC_H
#define HV_LAPIC_H

#include <hv/types.h>

void lapic_init(u64 mmio_base);
u32 lapic_id(void);
/* Send an IPI: 'icr_lo' is the ICR low word (vector, delivery mode, level); SDM Vol. 3A 11.6.1. */
bool lapic_send_ipi(u32 apic_id, u32 icr_lo);
/* Any register by its xAPIC offset (in x2APIC mode the MSR 0x800 + offset / 16). */
u32 lapic_read(u32 reg);
void lapic_write(u32 reg, u32 value);
/* The LVT registers this APIC implements (offsets), at most LAPIC_LVT_MAX; returns how many. */
#define LAPIC_LVT_MAX 7
#define LAPIC_LVT_MASKED (1u << 16)
u32 lapic_lvt_regs(u32 out[LAPIC_LVT_MAX]);
/* The spurious-interrupt vector register; LAPIC_SVR_ENABLE is the APIC's software enable (SDM 11.9). */
u32 lapic_read_svr(void);
void lapic_write_svr(u32 value);
/* End of interrupt for the one this CPU is handling (SDM Vol. 3A 11.8.5). */
void lapic_eoi(void);

#define ICR_INIT        (5u << 8)
#define ICR_STARTUP     (6u << 8)
#define ICR_NMI         (4u << 8)
#define ICR_LEVEL_ASSERT (1u << 14)
#define LAPIC_SVR_ENABLE (1u << 8)

#endif
