/* Deliberate faults inside the hypervisor (fault=ud|gp|pf|de) to prove the fatal path end to end. */
#include <hv/abi.h>
#include <hv/cmdline.h>
#include <hv/console.h>
#include <hv/panic.h>
#include <hv/percpu.h>
#include <hv/smp.h>

#define UNMAPPED_ADDR    0x0000100000000000ull   /* canonical, beyond the 4 GiB boot map: #PF */
#define NONCANONICAL_ADDR 0x8000000000000000ull  /* bits 63:47 not all equal: #GP(0) */

static void raise_fault(void)
{
    printk("CPU %u: raising the requested fault\n", this_cpu()->index);
    switch (hv_options.fault) {
    case FAULT_UD:
        __asm__ volatile("ud2");
        break;
    case FAULT_GP:
        __asm__ volatile("movq (%0), %%rax" : : "r"(NONCANONICAL_ADDR) : "rax", "memory");
        break;
    case FAULT_PF:
        __asm__ volatile("movq (%0), %%rax" : : "r"(UNMAPPED_ADDR) : "rax", "memory");
        break;
    case FAULT_DE:
        __asm__ volatile("xorl %%edx, %%edx; xorl %%ecx, %%ecx; movl $1, %%eax; divl %%ecx" : : : "rax", "rcx", "rdx");
        break;
    case FAULT_NONE:
        break;
    }
}

void fault_inject(void)
{
    if (hv_options.fault == FAULT_NONE)
        return;
    u32 cpu = hv_options.fault_cpu < 0 ? cpu_count - 1 : (u32)hv_options.fault_cpu;
    if (cpu >= cpu_count)
        hv_fail(HV_STATUS_BAD_CMDLINE, "bad_cmdline", "fault_cpu=%u but only %u CPUs are online", cpu, cpu_count);
    smp_run_on(cpu, raise_fault);
}
