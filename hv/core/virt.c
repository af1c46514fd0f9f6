/*
 * Virtualize every logical processor (the seed's "Enter VMM" loop): pick the back end the CPU
 * offers, initialise it once, then on each CPU in turn enable, launch (blue pill) and run the
 * self-test guest, which now executes in VMX non-root / SVM guest mode on that CPU.
 */
#include <hv/abi.h>
#include <hv/backend.h>
#include <hv/console.h>
#include <hv/discovery.h>
#include <hv/panic.h>
#include <hv/pool.h>
#include <hv/smp.h>
#include <hv/trace.h>

bool guest_selftest(void);

const struct hv_backend *virt_backend;
static volatile u32 cpus_passed;

static void virtualize_this_cpu(void)
{
    struct percpu *pc = this_cpu();
    pc->snapshot = pool_alloc(ALIGN_UP(sizeof(struct hv_snapshot), PAGE_SIZE) / PAGE_SIZE, PAGE_SIZE, "snapshot area");
    hv_trace.snapshot[pc->index] = (u64)pc->snapshot;
    trace_init_cpu(pc);
    if (!virt_backend->enable(pc))
        hv_fail(HV_STATUS_FAIL, "virt_enable", "CPU %u: %s could not be enabled", pc->index, virt_backend->name);
    if (virt_backend->launch(pc))
        hv_exit(HV_STATUS_FAIL, "virt_launch");
    /* From here on this CPU runs as a guest. */
    pc->launched = 1;
    __atomic_fetch_or(&hv_trace.launched, 1ull << pc->index, __ATOMIC_RELEASE);
    if (guest_selftest())
        __atomic_fetch_add(&cpus_passed, 1, __ATOMIC_RELAXED);
}

void virt_print_exit_counts(void)
{
    for (u32 cpu = 0; virt_backend && cpu < cpu_count; cpu++) {
        const u64 *counts = virt_backend->exit_counts(cpus[cpu]);
        char line[400];
        int n = snprintf(line, sizeof(line), "%s: CPU %u exits:", virt_backend->name, cpu);
        for (u32 i = 0; i < virt_backend->exit_counters && n < (int)sizeof(line); i++)
            if (counts[i])
                n += snprintf(line + n, sizeof(line) - (size_t)n, " %s=%lu", virt_backend->exit_counter_name(i),
                              counts[i]);
        printk("%s\n", line);
    }
}

bool virt_run_all(void)
{
    static const struct hv_backend *const candidates[] = { &vmx_backend, &svm_backend };
    for (u32 i = 0; i < ARRAY_SIZE(candidates) && !virt_backend; i++)
        if (candidates[i]->probe())
            virt_backend = candidates[i];
    if (!virt_backend) {
        printk("virt: this CPU offers neither VT-x nor AMD-V: nothing to virtualize\n");
        return true;
    }
    printk("virt: using the %s back end\n", virt_backend->name);
    hv_trace.vendor = virt_backend->vendor;
    if (!virt_backend->init())
        hv_fail(HV_STATUS_FAIL, "virt_init", "%s: initialisation failed", virt_backend->name);
    for (u32 i = 0; i < cpu_count; i++)
        smp_run_on(i, virtualize_this_cpu);
    virt_print_exit_counts();
    printk("virt: self-test passed on %u of %u CPUs\n", cpus_passed, cpu_count);
    return cpus_passed == cpu_count;
}
