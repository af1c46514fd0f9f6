/* Bring-up of every logical processor and running work on a chosen one. */
#ifndef HV_SMP_H
#define HV_SMP_H

#include <hv/percpu.h>

struct acpi_cpus;
void smp_start_aps(const struct acpi_cpus *found);
/* Run fn on CPU 'index' (0 = BSP, directly) and wait until it returns. */
void smp_run_on(u32 index, cpu_work_fn fn);
/* Start fn on CPU 'index' (>= 1) without waiting for it. */
void smp_start_on(u32 index, cpu_work_fn fn);

#endif
