/* ACPI discovery of logical processors: RSDP -> RSDT/XSDT -> MADT (ACPI 6.4, 5.2.5 - 5.2.12). */
#ifndef HV_ACPI_H
#define HV_ACPI_H

#include <hv/types.h>
#include <hv/abi.h>

struct acpi_cpus {
    u32 count;
    u32 apic_id[HV_MAX_CPUS];
    u64 lapic_base;
};

/* Fills 'out' with every enabled processor; ends the run when tables are missing or too many CPUs. */
void acpi_find_cpus(struct acpi_cpus *out);
/* The FADT's PM1a control port (where the OS writes SLP_TYP | SLP_EN to power off), 0 if none. */
u16 acpi_pm1a_cnt_port(void);
/* The FADT's SMI_CMD port (a write there raises a software SMI, ACPI 6.4 5.2.9), 0 if none. */
u16 acpi_smi_cmd_port(void);

#endif
