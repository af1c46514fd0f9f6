/*
 * CPUID storm: after the self-test every CPU executes CPUID in a loop, as fast as the emulator allows,
 * for live-capture tests and benchmarks. storm=1 loops forever (the host ends the run);
 * storm_iters=N executes N CPUIDs per CPU, then the run ends normally. storm_mix=1 adds an RDMSR of
 * MTRRcap (0xFE, emulated for the guest, msr_policy.c) to each round (benchmarks/exit_path.py; I/O and
 * xAPIC stores do not exit for this guest, mbtest's exit_loop has them).
 */
#include <hv/backend.h>
#include <hv/cmdline.h>
#include <hv/console.h>
#include <hv/percpu.h>
#include <hv/smp.h>
#include <hv/x86.h>

static u64 storm_iterations;    /* 0 = forever */

/* CPUID leaf round & 7, sub-leaf 0, with R12 = round and R15 = HV_STORM_MARK (abi.h). */
static inline void storm_cpuid(u64 round)
{
    register u64 r12 __asm__("r12") = round;
    register u64 r15 __asm__("r15") = HV_STORM_MARK;
    u32 a = (u32)round & 7, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d) : "r"(r12), "r"(r15));
}

static void storm_loop(void)
{
    bool mix = hv_options.storm_mix;
    for (u64 i = 0; !storm_iterations || i < storm_iterations; i++) {
        storm_cpuid(i);
        if (mix)
            (void)rdmsr(0xfe);
    }
}

__noreturn void guest_storm(void);
void guest_storm_count(u64 iterations);

__noreturn void guest_storm(void)
{
    printk("storm: every CPU now executes CPUID in a loop (the host ends the run)\n");
    for (u32 i = 1; i < cpu_count; i++)
        smp_start_on(i, storm_loop);
    storm_loop();
    for (;;)
        cpu_relax();
}

void guest_storm_count(u64 iterations)
{
    storm_iterations = iterations;
    printk("storm: every CPU executes CPUID %lu times\n", iterations);
    for (u32 i = 1; i < cpu_count; i++)
        smp_start_on(i, storm_loop);
    storm_loop();
    for (u32 i = 1; i < cpu_count; i++)
        while (!__atomic_load_n(&cpus[i]->work_done, __ATOMIC_ACQUIRE))
            cpu_relax();
    printk("storm: done, %lu CPUIDs on each of %u CPUs\n", iterations, cpu_count);
    virt_print_exit_counts();
}
