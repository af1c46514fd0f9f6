/* Names for VM-instruction errors (SDM Vol. 3C 31.4, Table 31-1) and basic exit reasons (Vol. 3D C). */
#include <hv/vmx/vmx.h>

static const char *const instruction_errors[] = {
    [1] = "VMCALL executed in VMX root operation",
    [2] = "VMCLEAR with invalid physical address",
    [3] = "VMCLEAR with VMXON pointer",
    [4] = "VMLAUNCH with non-clear VMCS",
    [5] = "VMRESUME with non-launched VMCS",
    [6] = "VMRESUME after VMXOFF",
    [7] = "VM entry with invalid control field(s)",
    [8] = "VM entry with invalid host-state field(s)",
    [9] = "VMPTRLD with invalid physical address",
    [10] = "VMPTRLD with VMXON pointer",
    [11] = "VMPTRLD with incorrect VMCS revision identifier",
    [12] = "VMREAD/VMWRITE from/to unsupported VMCS component",
    [13] = "VMWRITE to read-only VMCS component",
    [15] = "VMXON executed in VMX root operation",
    [16] = "VM entry with invalid executive-VMCS pointer",
    [17] = "VM entry with non-launched executive VMCS",
    [18] = "VM entry with executive-VMCS pointer not VMXON pointer",
    [19] = "VMCALL with non-clear VMCS",
    [20] = "VMCALL with invalid VM-exit control fields",
    [22] = "VMCALL with incorrect MSEG revision identifier",
    [23] = "VMXOFF under dual-monitor treatment of SMIs and SMM",
    [24] = "VMCALL with invalid SMM-monitor features",
    [25] = "VM entry with invalid VM-execution control fields in executive VMCS",
    [26] = "VM entry with events blocked by MOV SS",
    [28] = "Invalid operand to INVEPT/INVVPID",
};

const char *vmx_instruction_error_name(u32 err)
{
    if (err < ARRAY_SIZE(instruction_errors) && instruction_errors[err])
        return instruction_errors[err];
    return "unknown VM-instruction error";
}

static const char *const exit_reasons[VMX_EXIT_REASON_COUNT] = {
    [0] = "EXCEPTION_NMI", [1] = "EXTERNAL_INTERRUPT", [2] = "TRIPLE_FAULT", [3] = "INIT_SIGNAL",
    [4] = "SIPI", [5] = "IO_SMI", [6] = "OTHER_SMI", [7] = "INTERRUPT_WINDOW", [8] = "NMI_WINDOW",
    [9] = "TASK_SWITCH", [10] = "CPUID", [11] = "GETSEC", [12] = "HLT", [13] = "INVD", [14] = "INVLPG",
    [15] = "RDPMC", [16] = "RDTSC", [17] = "RSM", [18] = "VMCALL", [19] = "VMCLEAR", [20] = "VMLAUNCH",
    [21] = "VMPTRLD", [22] = "VMPTRST", [23] = "VMREAD", [24] = "VMRESUME", [25] = "VMWRITE",
    [26] = "VMXOFF", [27] = "VMXON", [28] = "CR_ACCESS", [29] = "DR_ACCESS", [30] = "IO_INSTRUCTION",
    [31] = "MSR_READ", [32] = "MSR_WRITE", [33] = "INVALID_GUEST_STATE", [34] = "MSR_LOADING",
    [36] = "MWAIT", [37] = "MONITOR_TRAP_FLAG", [39] = "MONITOR", [40] = "PAUSE", [41] = "MACHINE_CHECK",
    [43] = "TPR_BELOW_THRESHOLD", [44] = "APIC_ACCESS", [45] = "VIRTUALIZED_EOI", [46] = "GDTR_IDTR",
    [47] = "LDTR_TR", [48] = "EPT_VIOLATION", [49] = "EPT_MISCONFIG", [50] = "INVEPT", [51] = "RDTSCP",
    [52] = "PREEMPTION_TIMER", [53] = "INVVPID", [54] = "WBINVD", [55] = "XSETBV", [56] = "APIC_WRITE",
    [57] = "RDRAND", [58] = "INVPCID", [59] = "VMFUNC", [60] = "ENCLS", [61] = "RDSEED",
    [62] = "PML_FULL", [63] = "XSAVES", [64] = "XRSTORS", [65] = "PCONFIG", [66] = "SPP_EVENT", [67] = "UMWAIT",
    [68] = "TPAUSE", [69] = "LOADIWKEY", [70] = "ENCLV", [72] = "ENQCMD_PASID_FAILURE",
    [73] = "ENQCMDS_PASID_FAILURE", [74] = "BUS_LOCK", [75] = "NOTIFY", [76] = "SEAMCALL", [77] = "TDCALL",
};

const char *vmx_exit_reason_name(u32 reason)
{
    if (reason < VMX_EXIT_REASON_COUNT && exit_reasons[reason])
        return exit_reasons[reason];
    return "UNKNOWN";
}
