/* The VT-x instance of the core's backend interface. */
#include <hv/backend.h>
#include <hv/stage2.h>
#include <hv/vmx/ept.h>
#include <hv/vmx/vmcs.h>
#include <hv/vmx/vmx.h>
#include <hv/x86.h>

static bool vmx_probe(void)
{
    u32 a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    return c & (1u << 5);
}

/* The EPT identity map every CPU shares (the seed's InitEptTable / Ept11mapping). */
struct stage2 vmx_ept;

static bool vmx_init(void)
{
    return stage2_setup_identity(&vmx_ept, &ept_ops, ept_page_sizes(rdmsr(MSR_IA32_VMX_EPT_VPID_CAP)));
}

static int vmx_launch(struct percpu *pc)
{
    return vmx_start(pc);
}

static bool vmx_live_field(u64 field, u64 *value)
{
    return vmread_checked(field, value);
}

/*
 * CPUID's count is core's count of CPUID exits (the fast path, vmx/exit_fast.c, counts nothing more: issue 18);
 * only CPUID exits are of that kind. Every other reason's is vmx_exit_full's (exit.c).
 */
static u64 vmx_exit_count(const struct percpu *pc, u32 reason)
{
    if (reason == EXIT_REASON_CPUID)
        return pc->exit_kinds[HV_EXIT_CPUID];
    return ((const struct vmx_cpu *)pc->vendor)->exits[reason];
}

/* NMI-window exiting (virtual NMIs only, SDM Vol. 3C 26.6.2) on the current VMCS: the held NMI goes in soon. */
static void vmx_nmi_held(void)
{
    if (vmx_caps.pin & PIN_VIRTUAL_NMIS)
        vmwrite(CPU_BASED_VM_EXEC_CONTROL, vmread(CPU_BASED_VM_EXEC_CONTROL) | CPU_NMI_WINDOW_EXITING);
}

const struct hv_backend vmx_backend = {
    .name = "vmx",
    .vendor = HV_VENDOR_VMX,
    .probe = vmx_probe,
    .init = vmx_init,
    .enable = vmx_enable,
    .launch = vmx_launch,
    .start_guest = vmx_start_guest,
    .stage2 = &vmx_ept,
    .nmi_held = vmx_nmi_held,
    .snapshot = vmx_snapshot,
    .exit_counters = VMX_EXIT_REASON_COUNT,
    .exit_count = vmx_exit_count,
    .live_field = vmx_live_field,
    .exit_counter_name = vmx_exit_reason_name,
};
