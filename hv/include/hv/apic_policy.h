/*
 * What a guest store to the xAPIC page may do to the real local APIC (issue 13): one table, per register
 * offset of SDM Vol. 3A Table 11-1, whether the guest may write it and how the value is checked. And
 * which instructions fetched from the page may run (apic_policy_fetch, below).
 *
 * - Only an aligned 32-bit store reaches a register (SDM 11.4.1: other sizes and alignments are model
 *   specific / undefined; a partial store merged into a register could fire a side effect, e.g. an IPI).
 * - Read-only and reserved registers: the store is dropped, as the hardware ignores it. The ESR is not
 *   virtualized (reads come from the real APIC through the read-only mapping), so reserved-register
 *   stores do not set its bit 7; they are not passed on either (QEMU ended the run on a store at 0).
 *   The APIC ID is read-only here, as on Nehalem and later (Table 11-1 note): the hypervisor addresses
 *   its own NMI kicks by APIC ID.
 * - Writable registers get their defined bits only (reserved bits cleared, DFR bits 27:0 set).
 * - LVT entries (11.5.1): a delivery mode the SDM does not allow for that entry, or one that would reach
 *   the host's CPU outside the guest (SMI, INIT, the reserved 011 / 110, ExtINT anywhere but LINT0/1,
 *   any mode in the timer / error entries that have no mode field), a reserved timer mode, or an
 *   unmasked Fixed entry with a vector 0-15 (11.5.3: such a vector is illegal; a device model may still
 *   deliver it, as an exception vector on the host) is written masked with Fixed mode: the guest reading
 *   it back sees the entry masked. The store is flagged security.
 * - ICR low (11.6.1): Fixed, Lowest Priority and NMI go to the real APIC, INIT and STARTUP are
 *   emulated (apic_emul.c); SMI and the reserved modes 011 / 111, and Fixed / Lowest Priority with a
 *   vector 0-15 (the hardware sends nothing and sets "send illegal vector") are dropped, flagged.
 */
#ifndef HV_APIC_POLICY_H
#define HV_APIC_POLICY_H

#include <hv/types.h>

#define APIC_LVT_MASKED    (1u << 16)
#define APIC_LVT_MODE(v)   (((v) >> 8) & 7)
#define APIC_MODE_FIXED    0
#define APIC_MODE_LOWEST   1
#define APIC_MODE_SMI      2
#define APIC_MODE_NMI      4
#define APIC_MODE_INIT     5
#define APIC_MODE_STARTUP  6
#define APIC_MODE_EXTINT   7

enum apic_write_action {
    APIC_WRITE_PASS,    /* 'value' goes to the register (apic_emul_mmio_write) */
    APIC_WRITE_DROP,    /* nothing reaches the APIC */
};

struct apic_write_verdict {
    u8 action;          /* enum apic_write_action */
    bool security;      /* the guest's value was changed or refused to keep it from the host: flag the record */
    u32 value;          /* PASS: what the register gets */
    const char *why;    /* DROP or a changed value: the reason, for the console */
};

/*
 * The verdict on a guest store of 'size' bytes of 'value' at 'offset' in the xAPIC page. tsc_deadline:
 * the CPU has the TSC-deadline timer mode (CPUID.01H:ECX[24], 11.5.4.1), else that mode is reserved.
 */
void apic_policy_write(u32 offset, u32 size, u32 value, bool tsc_deadline, struct apic_write_verdict *out);

/*
 * The fetch policy for code in the xAPIC page (apic_step.h): an instruction there runs as one single
 * step from a copy of the page. The ones a step cannot hold to one instruction get #UD instead: NULL if
 * the instruction at 'b' may run, else why not. 'b' holds the 'n' bytes of its 16-byte slot from the
 * fetch on (the register's bytes, then zeros); long_mode: 64-bit code (REX prefixes).
 */
const char *apic_policy_fetch(const u8 *b, u32 n, bool long_mode);

#endif
