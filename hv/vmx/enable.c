/*
 * EnableVMX (the seed's step, docs/walkthrough.md step 7, with the checks the seed skipped): on one CPU, interrupts off,
 *   CPUID.1:ECX.VMX -> IA32_FEATURE_CONTROL -> IA32_VMX_BASIC (revision, TRUE controls) -> every
 *   control against its allowed-0/allowed-1 MSR -> EPT/VPID capabilities -> CR0/CR4 FIXED0/FIXED1
 *   -> only then CR4.VMXE -> VMXON.
 * SDM Vol. 3C 24.6 "Discovering Support for VMX", 24.7 "Enabling and Entering VMX Operation",
 * Vol. 3D Appendix A. A failed check prints its name and leaves VMX off on that CPU.
 */
#include <hv/cmdline.h>
#include <hv/console.h>
#include <hv/pool.h>
#include <hv/vmx/halt.h>
#include <hv/vmx/vmx.h>
#include <hv/x86.h>

struct vmx_caps vmx_caps;

/* The controls hvtrace asks for; each must survive the allowed-0/allowed-1 adjustment. */
#define WANT_PIN   (PIN_NMI_EXITING)
#define WANT_CPU   (CPU_CR3_LOAD_EXITING | CPU_USE_IO_BITMAPS | CPU_USE_MSR_BITMAPS | CPU_ACTIVATE_SECONDARY)
#define WANT_CPU2  (CPU2_ENABLE_EPT | CPU2_ENABLE_VPID)
/*
 * Debug controls: the guest's DR7 and IA32_DEBUGCTL are saved on exit and loaded on entry (26.7.1,
 * 26.8.1); without them every exit resets DR7 to 0x400 and DEBUGCTL to 0 underneath the guest (28.5.1),
 * and its hardware breakpoints and LBRs stop working.
 */
#define WANT_EXIT  (EXIT_SAVE_DEBUG_CONTROLS | EXIT_HOST_ADDR_SPACE_SIZE | EXIT_SAVE_PAT | EXIT_LOAD_PAT | \
                    EXIT_SAVE_EFER | EXIT_LOAD_EFER)
#define WANT_ENTRY (ENTRY_LOAD_DEBUG_CONTROLS | ENTRY_IA32E_MODE_GUEST | ENTRY_LOAD_PAT | ENTRY_LOAD_EFER)
/* Virtual NMIs: the CPU tracks the guest's NMI blocking, and NMI-window exiting exists (26.6.1, 26.6.2). */
#define OPTIONAL_PIN  (PIN_VIRTUAL_NMIS)
/*
 * TSC offsetting: a guest write of IA32_TSC moves its own TSC, not the host's (msr_emul.c, 26.6.5).
 * HLT exiting: the guest's HLT kept across the hypervisor's own exits (vmx/halt.c), where it can be.
 */
#define OPTIONAL_CPU  (CPU_USE_TSC_OFFSETTING | CPU_HLT_EXITING)
/* Used when present, so the guest keeps instructions it has on bare metal (else they #UD). */
#define OPTIONAL_CPU2 (CPU2_ENABLE_RDTSCP | CPU2_ENABLE_INVPCID | CPU2_ENABLE_XSAVES | CPU2_UNRESTRICTED_GUEST)

static bool check(bool ok, const char *what, u32 cpu)
{
    if (!ok)
        printk("vmx: CPU %u: check failed: %s; VMX stays off\n", cpu, what);
    return ok;
}

/*
 * Allowed settings (Appendix A.3-A.5): bits 31:0 of the MSR are the allowed-0 settings (a 1 there
 * forces the control on), bits 63:32 the allowed-1 settings (a 0 there forces it off).
 */
static bool adjust(u32 msr, u32 want, u32 optional, u32 *out, const char *name, u32 cpu)
{
    u64 v = rdmsr(msr);
    u32 must = (u32)v, may = (u32)(v >> 32);
    *out = ((want | optional) | must) & may;
    if ((*out & want) != want) {
        printk("vmx: CPU %u: %s: requested controls 0x%x not allowed (allowed-1 0x%x)\n", cpu, name,
               want & ~*out, may);
        return false;
    }
    return true;
}

/* Compute the capability set on this CPU. Returns false (with the failing check named) if unusable. */
static bool read_caps(struct vmx_caps *c, u32 cpu)
{
    u32 a, b, ecx, d;
    cpuid(1, 0, &a, &b, &ecx, &d);
    if (!check(ecx & (1u << 5), "CPUID.1:ECX.VMX[bit 5] = 1", cpu))
        return false;

    /* IA32_FEATURE_CONTROL (SDM 24.7): lock it with VMXON enabled if the firmware left it unlocked. */
    u64 fc = rdmsr(MSR_IA32_FEATURE_CONTROL);
    if (!(fc & FEATURE_CONTROL_LOCKED)) {
        wrmsr(MSR_IA32_FEATURE_CONTROL, fc | FEATURE_CONTROL_LOCKED | FEATURE_CONTROL_VMXON);
        fc = rdmsr(MSR_IA32_FEATURE_CONTROL);
    }
    if (!check(fc & FEATURE_CONTROL_VMXON, "IA32_FEATURE_CONTROL allows VMXON outside SMX (locked disabled)", cpu))
        return false;

    u64 basic = rdmsr(MSR_IA32_VMX_BASIC);
    c->revision_id = (u32)basic & 0x7fffffff;
    c->true_ctls = basic & VMX_BASIC_TRUE_CTLS;
    if (!check(((basic >> 50) & 0xf) == 6, "IA32_VMX_BASIC: VMCS memory type write-back", cpu))
        return false;
    if (!check(((basic >> 32) & 0x1fff) <= PAGE_SIZE, "IA32_VMX_BASIC: VMXON/VMCS region fits a page", cpu))
        return false;

    /* TRUE_* MSRs report the real allowed-0 settings of the default-1 controls (Appendix A.2). */
    /* unhandled_exit_test=1 (cmdline.h): RDPMC exiting on, with no handler in the dispatch table. */
    u32 want_cpu = WANT_CPU | (hv_options.unhandled_exit_test ? CPU_RDPMC_EXITING : 0);
    /* gdbstub=1: a periodic exit where the stub looks for Ctrl-C even in a guest that never exits. */
    u32 optional_pin = OPTIONAL_PIN | (hv_options.gdbstub ? PIN_PREEMPTION_TIMER : 0);
    u32 pin_msr = c->true_ctls ? MSR_IA32_VMX_TRUE_PINBASED : MSR_IA32_VMX_PINBASED_CTLS;
    bool ok = adjust(pin_msr, WANT_PIN, optional_pin,
                     &c->pin,
                     "pin-based controls", cpu) &&
              adjust(c->true_ctls ? MSR_IA32_VMX_TRUE_PROCBASED : MSR_IA32_VMX_PROCBASED_CTLS, want_cpu, OPTIONAL_CPU, &c->cpu,
                     "primary processor-based controls", cpu) &&
              adjust(MSR_IA32_VMX_PROCBASED_CTLS2, WANT_CPU2, OPTIONAL_CPU2, &c->cpu2,
                     "secondary processor-based controls", cpu) &&
              adjust(c->true_ctls ? MSR_IA32_VMX_TRUE_EXIT : MSR_IA32_VMX_EXIT_CTLS, WANT_EXIT, 0, &c->exit,
                     "VM-exit controls", cpu) &&
              adjust(c->true_ctls ? MSR_IA32_VMX_TRUE_ENTRY : MSR_IA32_VMX_ENTRY_CTLS, WANT_ENTRY, 0, &c->entry,
                     "VM-entry controls", cpu);
    if (!ok)
        return false;
    const char *no_hlt = vmx_halt_unusable(c, rdmsr(MSR_IA32_VMX_MISC), (u32)(rdmsr(pin_msr) >> 32));
    if (no_hlt) {
        c->cpu &= ~CPU_HLT_EXITING;     /* optional: the guest's HLT then runs unintercepted */
        if (cpu == 0)
            printk("vmx: the guest's HLT is not kept across the hypervisor's exits: %s\n", no_hlt);
    }

    c->ept_vpid_cap = rdmsr(MSR_IA32_VMX_EPT_VPID_CAP);
    u64 e = c->ept_vpid_cap;
    if (!check(e & EPT_CAP_WALK_4, "EPT: 4-level page walk", cpu) ||
        !check(e & EPT_CAP_WB, "EPT: write-back paging structures", cpu) ||
        !check(e & EPT_CAP_INVEPT, "EPT: INVEPT instruction", cpu) ||
        !check(e & (EPT_CAP_INVEPT_SINGLE | EPT_CAP_INVEPT_ALL), "EPT: INVEPT single- or all-context", cpu) ||
        !check(e & VPID_CAP_INVVPID, "VPID: INVVPID instruction", cpu) ||
        !check(e & (VPID_CAP_INVVPID_SINGLE | VPID_CAP_INVVPID_ALL), "VPID: INVVPID single- or all-context", cpu))
        return false;

    c->cr0_fixed0 = rdmsr(MSR_IA32_VMX_CR0_FIXED0);
    c->cr0_fixed1 = rdmsr(MSR_IA32_VMX_CR0_FIXED1);
    c->cr4_fixed0 = rdmsr(MSR_IA32_VMX_CR4_FIXED0);
    c->cr4_fixed1 = rdmsr(MSR_IA32_VMX_CR4_FIXED1);
    c->vmcs_enum_max_index = (rdmsr(MSR_IA32_VMX_VMCS_ENUM) >> 1) & 0x1ff;
    return true;
}

static bool vmxon(u64 pa)
{
    bool fail;
    __asm__ volatile("vmxon %1; setbe %0" : "=qm"(fail) : "m"(pa) : "cc", "memory");
    return !fail;
}

bool vmx_enable(struct percpu *pc)
{
    struct vmx_caps c = { 0 };
    if (!read_caps(&c, pc->index))
        return false;
    if (pc->index == 0)
        vmx_caps = c;
    else if (!check(c.pin == vmx_caps.pin && c.cpu == vmx_caps.cpu && c.cpu2 == vmx_caps.cpu2 &&
                        c.exit == vmx_caps.exit && c.entry == vmx_caps.entry,
                    "same VMX capabilities as the BSP", pc->index))
        return false;

    /* CR0 and CR4 must satisfy FIXED0 (bits that must be 1) and FIXED1 (bits that may be 1): 24.8. */
    u64 cr0 = read_cr0(), cr4 = read_cr4();
    if (!check((cr0 & c.cr0_fixed0) == c.cr0_fixed0 && (cr0 & ~c.cr0_fixed1) == 0, "CR0 within IA32_VMX_CR0_FIXED0/1",
               pc->index))
        return false;
    if (!check(((cr4 | X86_CR4_VMXE) & ~c.cr4_fixed1) == 0, "CR4 within IA32_VMX_CR4_FIXED1", pc->index))
        return false;

    struct vmx_cpu *v = pool_alloc(1, PAGE_SIZE, "vmx_cpu");
    _Static_assert(sizeof(struct vmx_cpu) <= PAGE_SIZE, "vmx_cpu fits a page");
    v->vmxon_region = pool_alloc(1, PAGE_SIZE, "VMXON region");
    v->vmcs_region = pool_alloc(1, PAGE_SIZE, "VMCS region");
    v->msr_bitmap = pool_alloc_immutable(1, "MSR bitmap");
    v->io_bitmap = pool_alloc_immutable(2, "I/O bitmaps");
    v->host_stack_top = (u64)pool_alloc(CPU_STACK_PAGES, PAGE_SIZE, "VMM stack") + CPU_STACK_PAGES * PAGE_SIZE;
    v->vpid = (u16)(pc->index + 1);     /* VPID 0 is the host's (SDM 29.1) */

    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | X86_CR4_VMXE | c.cr4_fixed0) : "memory");
    *(u32 *)v->vmxon_region = c.revision_id;
    if (!vmxon((u64)v->vmxon_region)) {
        __asm__ volatile("mov %0, %%cr4" : : "r"(cr4) : "memory");
        printk("vmx: CPU %u: VMXON failed (CR4=0x%lx)\n", pc->index, read_cr4());
        return false;
    }
    pc->vendor = v;
    printk("vmx: CPU %u: VMXON ok (revision 0x%x, %s controls, VPID %u)\n", pc->index, c.revision_id,
           c.true_ctls ? "TRUE" : "legacy", v->vpid);
    return true;
}
