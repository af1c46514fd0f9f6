/*
 * CPUID storm (storm=1): after the self-test, every CPU executes CPUID in a loop, forever, as fast as
 * the emulator allows: the maximum exit rate, for live-capture tests and benchmarks. The run never
 * prints a final status; the host ends it.
 */
#include <hv/console.h>
#include <hv/percpu.h>
#include <hv/smp.h>
#include <hv/x86.h>

static __noreturn void storm_loop(void)
{
    u32 a, b, c, d;
    for (u32 leaf = 0;; leaf = (leaf + 1) & 7)
        cpuid(leaf, 0, &a, &b, &c, &d);
}

static void storm_work(void) { storm_loop(); }

__noreturn void guest_storm(void);

__noreturn void guest_storm(void)
{
    printk("storm: every CPU now executes CPUID in a loop (the host ends the run)\n");
    for (u32 i = 1; i < cpu_count; i++)
        smp_start_on(i, storm_work);
    storm_loop();
}
