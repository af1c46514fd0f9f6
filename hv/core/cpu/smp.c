/*
 * Start every application processor (the seed's "loop over LPs", docs/walkthrough.md step 4). The BSP copies the real-mode
 * trampoline to AP_TRAMPOLINE_ADDR and, one AP at a time, fills the trampoline's parameters, sends
 * INIT, waits 10 ms, sends a Startup IPI, waits 200 us and sends a second one (SDM Vol. 3A 9.4.4.1
 * "Typical BSP Initialization Sequence"), then waits for the AP to report online. One at a time keeps
 * the single parameter block race-free. APs then idle, waiting for work from the BSP.
 */
#include <hv/abi.h>
#include <hv/acpi.h>
#include <hv/cmdline.h>
#include <hv/console.h>
#include <hv/lapic.h>
#include <hv/mtrr.h>
#include <hv/panic.h>
#include <hv/pool.h>
#include <hv/smp.h>
#include <hv/timer.h>
#include <hv/x86.h>
#include "boot.h"

struct ap_boot_params {
    u64 cr3;
    u64 stack;
    u64 entry;
    u64 arg;
};

extern const u8 ap_trampoline_start[], ap_trampoline_end[];
extern struct ap_boot_params ap_boot_params;    /* inside the trampoline image; we write the copy */

/* The BSP's MTRRs, copied to every AP as it comes up (mtrr_sync.c). */
static struct mtrr_state bsp_mtrrs;

static __noreturn void ap_entry(struct percpu *pc)
{
    cpu_init_local(pc);
    mtrr_write(&bsp_mtrrs);
    /* The trampoline turned caching on (INIT leaves CD and NW set): an AP never runs uncached. */
    if (read_cr0() & (X86_CR0_CD | X86_CR0_NW))
        hv_fail(HV_STATUS_FAIL, "ap_uncached", "CPU %u: CR0 0x%lx leaves caching disabled (CD/NW)", pc->index,
                read_cr0());
    __atomic_store_n(&pc->online, 1, __ATOMIC_RELEASE);
    for (;;) {
        cpu_work_fn fn = __atomic_load_n(&pc->work, __ATOMIC_ACQUIRE);
        if (!fn) {
            cpu_relax();
            continue;
        }
        fn();
        pc->work = NULL;
        __atomic_store_n(&pc->work_done, 1, __ATOMIC_RELEASE);
    }
}

static struct percpu *alloc_percpu(u32 index, u32 apic_id)
{
    struct percpu *pc = pool_alloc(2, PAGE_SIZE, "per-CPU state");
    u8 *stack = pool_alloc(CPU_STACK_PAGES, PAGE_SIZE, "CPU stack");
    u8 *ist = pool_alloc(CPU_IST_PAGES, PAGE_SIZE, "CPU IST stack");
    pc->self = pc;
    pc->index = index;
    pc->apic_id = apic_id;
    pc->stack_top = (u64)stack + CPU_STACK_PAGES * PAGE_SIZE;
    pc->ist_top = (u64)ist + CPU_IST_PAGES * PAGE_SIZE;
    return pc;
}

static void start_ap(struct percpu *pc)
{
    volatile struct ap_boot_params *params =
        phys(AP_TRAMPOLINE_ADDR + (u64)((const u8 *)&ap_boot_params - ap_trampoline_start));
    params->cr3 = read_cr3();
    params->stack = pc->stack_top;
    params->entry = (u64)ap_entry;
    params->arg = (u64)pc;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);

    const u32 sipi = ICR_STARTUP | (AP_TRAMPOLINE_ADDR >> 12);
    bool sent = lapic_send_ipi(pc->apic_id, ICR_INIT | ICR_LEVEL_ASSERT);
    udelay(10000);
    sent &= lapic_send_ipi(pc->apic_id, sipi);
    udelay(200);
    if (!__atomic_load_n(&pc->online, __ATOMIC_ACQUIRE))
        sent &= lapic_send_ipi(pc->apic_id, sipi);
    if (!sent)
        hv_fail(HV_STATUS_AP_TIMEOUT, "ap_timeout", "CPU %u (APIC %u): the local APIC never accepted the IPI",
                pc->index, pc->apic_id);

    u64 deadline = deadline_after_ms(hv_options.ap_timeout_ms);
    while (!__atomic_load_n(&pc->online, __ATOMIC_ACQUIRE)) {
        if (deadline_passed(deadline))
            hv_fail(HV_STATUS_AP_TIMEOUT, "ap_timeout", "CPU %u (APIC %u) did not come online within %u ms",
                    pc->index, pc->apic_id, hv_options.ap_timeout_ms);
        cpu_relax();
    }
}

void smp_start_aps(const struct acpi_cpus *found)
{
    mtrr_read(&bsp_mtrrs);
    struct percpu *bsp = cpus[0];
    bsp->apic_id = lapic_id();
    memcpy(phys(AP_TRAMPOLINE_ADDR), ap_trampoline_start, (size_t)(ap_trampoline_end - ap_trampoline_start));
    bsp->online = 1;
    for (u32 i = 0; i < found->count; i++) {
        if (found->apic_id[i] == bsp->apic_id)
            continue;
        struct percpu *pc = alloc_percpu(cpu_count, found->apic_id[i]);
        cpus[cpu_count++] = pc;
        start_ap(pc);
        printk("CPU %u (APIC %u) online\n", pc->index, pc->apic_id);
    }
}

void smp_start_on(u32 index, cpu_work_fn fn)
{
    struct percpu *pc = cpus[index];
    pc->work_done = 0;
    __atomic_store_n(&pc->work, fn, __ATOMIC_RELEASE);
}

void smp_run_on(u32 index, cpu_work_fn fn)
{
    if (index == 0) {
        fn();
        return;
    }
    struct percpu *pc = cpus[index];
    smp_start_on(index, fn);
    while (!__atomic_load_n(&pc->work_done, __ATOMIC_ACQUIRE))
        cpu_relax();
}
