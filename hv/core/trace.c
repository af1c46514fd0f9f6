/* Names of the vendor-neutral exit kinds (abi.h), as the host tools print them. */
#include <hv/abi.h>
#include <hv/trace.h>

static const char *const kind_names[HV_EXIT_KIND_COUNT] = {
    [HV_EXIT_OTHER] = "OTHER", [HV_EXIT_CPUID] = "CPUID", [HV_EXIT_MSR_READ] = "MSR_READ",
    [HV_EXIT_MSR_WRITE] = "MSR_WRITE", [HV_EXIT_CR_ACCESS] = "CR_ACCESS", [HV_EXIT_VMCALL] = "VMCALL",
    [HV_EXIT_INVD] = "INVD", [HV_EXIT_EXCEPTION] = "EXCEPTION", [HV_EXIT_STAGE2_FAULT] = "STAGE2_FAULT",
    [HV_EXIT_IO] = "IO", [HV_EXIT_HLT] = "HLT", [HV_EXIT_XSETBV] = "XSETBV", [HV_EXIT_INIT] = "INIT",
    [HV_EXIT_SIPI] = "SIPI", [HV_EXIT_TRIPLE_FAULT] = "TRIPLE_FAULT", [HV_EXIT_ENTRY_FAILURE] = "ENTRY_FAILURE",
    [HV_EXIT_VIRT_INSN] = "VIRT_INSN",
};

const char *exit_kind_name(u32 kind)
{
    return kind < HV_EXIT_KIND_COUNT ? kind_names[kind] : "?";
}
