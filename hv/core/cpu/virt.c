/*
 * Virtualize every logical processor (the seed's "Enter VMM" loop, docs/walkthrough.md step 4): pick the back end the CPU
 * offers, initialise it once, then on each CPU in turn enable, launch (blue pill) and run the
 * self-test guest, which now executes in VMX non-root / SVM guest mode on that CPU.
 */
#include <hv/abi.h>
#include <hv/apic_emul.h>
#include <hv/backend.h>
#include <hv/console.h>
#include <hv/discovery.h>
#include <hv/guest.h>
#include <hv/panic.h>
#include <hv/pool.h>
#include <hv/smp.h>
#include <hv/trace.h>
#include <hv/x86.h>

bool guest_selftest(void);

const struct hv_backend *virt_backend;
static volatile u32 cpus_passed;

/* Snapshot area, trace ring and the back end switched on for this CPU (no guest yet). */
static void prepare_this_cpu(void)
{
    struct percpu *pc = this_cpu();
    pc->snapshot = pool_alloc(ALIGN_UP(sizeof(struct hv_snapshot), PAGE_SIZE) / PAGE_SIZE, PAGE_SIZE, "snapshot area");
    hv_trace.snapshot[pc->index] = (u64)pc->snapshot;
    trace_init_cpu(pc);
    if (!virt_backend->enable(pc))
        hv_fail(HV_STATUS_FAIL, "virt_enable", "CPU %u: %s could not be enabled", pc->index, virt_backend->name);
}

static void mark_launched(struct percpu *pc)
{
    pc->launched = 1;
    __atomic_fetch_or(&hv_trace.launched, 1ull << pc->index, __ATOMIC_RELEASE);
}

static void virtualize_this_cpu(void)
{
    struct percpu *pc = this_cpu();
    prepare_this_cpu();
    if (virt_backend->launch(pc))
        hv_exit(HV_STATUS_FAIL, "virt_launch");
    /* From here on this CPU runs as a guest. */
    mark_launched(pc);
    if (guest_selftest())
        __atomic_fetch_add(&cpus_passed, 1, __ATOMIC_RELAXED);
}

void virt_print_exit_counts(void)
{
    for (u32 cpu = 0; virt_backend && cpu < cpu_count; cpu++) {
        char line[400];
        int n = snprintf(line, sizeof(line), "%s: CPU %u exits:", virt_backend->name, cpu);
        for (u32 i = 0; i < virt_backend->exit_counters && n < (int)sizeof(line); i++) {
            u64 count = virt_backend->exit_count(cpus[cpu], i);
            if (count)
                n += snprintf(line + n, sizeof(line) - (size_t)n, " %s=%lu", virt_backend->exit_counter_name(i), count);
        }
        printk("%s\n", line);
        if (cpus[cpu]->park_checks)
            printk("park: CPU %u looked for its SIPI %lu times (it sleeps in HLT between)\n", cpu,
                   cpus[cpu]->park_checks);
    }
}

static bool pick_backend(void)
{
    static const struct hv_backend *const candidates[] = { &vmx_backend, &svm_backend };
    for (u32 i = 0; i < ARRAY_SIZE(candidates) && !virt_backend; i++)
        if (candidates[i]->probe())
            virt_backend = candidates[i];
    if (!virt_backend)
        return false;
    printk("virt: using the %s back end\n", virt_backend->name);
    hv_trace.vendor = virt_backend->vendor;
    if (!virt_backend->init())
        hv_fail(HV_STATUS_FAIL, "virt_init", "%s: initialisation failed", virt_backend->name);
    return true;
}

bool virt_run_all(void)
{
    if (!pick_backend()) {
        printk("virt: this CPU offers neither VT-x nor AMD-V: nothing to virtualize\n");
        return true;
    }
    for (u32 i = 0; i < cpu_count; i++)
        smp_run_on(i, virtualize_this_cpu);
    virt_print_exit_counts();
    printk("virt: self-test passed on %u of %u CPUs\n", cpus_passed, cpu_count);
    return cpus_passed == cpu_count;
}

/*
 * An AP while a loaded guest runs: virtualization on, in host mode, out of the guest's reach until the
 * guest starts it with INIT-SIPI (emulated, apic_emul.c); then it enters the guest in real mode at the
 * SIPI vector. A real INIT never arrives meanwhile: the guest's are emulated; VMX root operation blocks
 * one (SDM Vol. 3C "Restrictions on VMX Operation"), and on AMD the back end's hold() keeps GIF = 0
 * (APM Vol. 2 15.17) but for the HLT it sleeps in (park.c).
 */
static __noreturn void park_this_cpu(void)
{
    struct percpu *pc = this_cpu();
    if (virt_backend->hold)
        virt_backend->hold();
    struct guest_start gs = { .mode = GUEST_MODE_REAL, .sipi_vector = apic_emul_wait_sipi(pc) };
    mark_launched(pc);
    virt_backend->start_guest(pc, &gs);
    hv_exit(HV_STATUS_FAIL, "guest_launch");
}

__noreturn void virt_restart_this_cpu(void)
{
    struct percpu *pc = this_cpu();
    printk("guest: CPU %u is in wait-for-SIPI after an INIT\n", pc->index);
    pc->in_root = 0;
    park_this_cpu();
}

/* Pages the sealed pool keeps for allocations after the guest starts (stage-2 tables for holes). */
#define GUEST_POOL_SPARE_PAGES 256

__noreturn void virt_run_guest(const struct multiboot_info *mbi)
{
    if (!pick_backend())
        hv_fail(HV_STATUS_FAIL, "virt_none", "a guest kernel needs VT-x or AMD-V, and this CPU has neither");
    for (u32 i = 0; i < cpu_count; i++)
        smp_run_on(i, prepare_this_cpu);
    pool_seal(GUEST_POOL_SPARE_PAGES);
    if (!guest_isolate(virt_backend->stage2))
        hv_fail(HV_STATUS_FAIL, "guest_isolate", "removing hypervisor memory from the stage-2 map failed");
    if (!apic_emul_init(virt_backend->stage2))
        hv_fail(HV_STATUS_FAIL, "guest_apic", "write-protecting the xAPIC page in the stage-2 map failed");
    guest_load(mbi);
    for (u32 i = 1; i < cpu_count; i++)
        smp_start_on(i, park_this_cpu);
    struct percpu *pc = this_cpu();
    mark_launched(pc);
    printk("guest: CPU %u enters the guest at 0x%lx\n", pc->index, guest.bsp.rip);
    virt_backend->start_guest(pc, &guest.bsp);
    hv_exit(HV_STATUS_FAIL, "guest_launch");
}
