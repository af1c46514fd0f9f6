/*
 * VMCS field encodings (SDM Vol. 3D Appendix B "Field Encoding in VMCS") and VMREAD/VMWRITE.
 * Only fields the hypervisor writes or reads by name; the snapshot walks every encoding.
 */
#ifndef HV_VMX_VMCS_H
#define HV_VMX_VMCS_H

#include <hv/types.h>

enum vmcs_field {
    /* 16-bit control / guest / host */
    VIRTUAL_PROCESSOR_ID = 0x0000,
    GUEST_ES_SELECTOR = 0x0800, GUEST_CS_SELECTOR = 0x0802, GUEST_SS_SELECTOR = 0x0804,
    GUEST_DS_SELECTOR = 0x0806, GUEST_FS_SELECTOR = 0x0808, GUEST_GS_SELECTOR = 0x080a,
    GUEST_LDTR_SELECTOR = 0x080c, GUEST_TR_SELECTOR = 0x080e,
    HOST_ES_SELECTOR = 0x0c00, HOST_CS_SELECTOR = 0x0c02, HOST_SS_SELECTOR = 0x0c04,
    HOST_DS_SELECTOR = 0x0c06, HOST_FS_SELECTOR = 0x0c08, HOST_GS_SELECTOR = 0x0c0a,
    HOST_TR_SELECTOR = 0x0c0c,
    /* 64-bit control */
    IO_BITMAP_A = 0x2000, IO_BITMAP_B = 0x2002, MSR_BITMAP = 0x2004,
    VM_EXIT_MSR_STORE_ADDR = 0x2006, VM_EXIT_MSR_LOAD_ADDR = 0x2008, VM_ENTRY_MSR_LOAD_ADDR = 0x200a,
    TSC_OFFSET = 0x2010, EPT_POINTER = 0x201a, XSS_EXIT_BITMAP = 0x202c,
    GUEST_PHYSICAL_ADDRESS = 0x2400,
    /* 64-bit guest / host */
    VMCS_LINK_POINTER = 0x2800, GUEST_IA32_DEBUGCTL = 0x2802, GUEST_IA32_PAT = 0x2804,
    GUEST_IA32_EFER = 0x2806, GUEST_PDPTR0 = 0x280a, GUEST_PDPTR1 = 0x280c, GUEST_PDPTR2 = 0x280e,
    GUEST_PDPTR3 = 0x2810,
    HOST_IA32_PAT = 0x2c00, HOST_IA32_EFER = 0x2c02,
    /* 32-bit control */
    PIN_BASED_VM_EXEC_CONTROL = 0x4000, CPU_BASED_VM_EXEC_CONTROL = 0x4002, EXCEPTION_BITMAP = 0x4004,
    PAGE_FAULT_ERROR_CODE_MASK = 0x4006, PAGE_FAULT_ERROR_CODE_MATCH = 0x4008, CR3_TARGET_COUNT = 0x400a,
    VM_EXIT_CONTROLS = 0x400c, VM_EXIT_MSR_STORE_COUNT = 0x400e, VM_EXIT_MSR_LOAD_COUNT = 0x4010,
    VM_ENTRY_CONTROLS = 0x4012, VM_ENTRY_MSR_LOAD_COUNT = 0x4014, VM_ENTRY_INTR_INFO = 0x4016,
    VM_ENTRY_EXCEPTION_ERROR_CODE = 0x4018, VM_ENTRY_INSTRUCTION_LEN = 0x401a,
    SECONDARY_VM_EXEC_CONTROL = 0x401e,
    /* 32-bit read-only data */
    VM_INSTRUCTION_ERROR = 0x4400, VM_EXIT_REASON = 0x4402, VM_EXIT_INTR_INFO = 0x4404,
    VM_EXIT_INTR_ERROR_CODE = 0x4406, IDT_VECTORING_INFO = 0x4408, IDT_VECTORING_ERROR_CODE = 0x440a,
    VM_EXIT_INSTRUCTION_LEN = 0x440c, VMX_INSTRUCTION_INFO = 0x440e,
    /* 32-bit guest / host */
    GUEST_ES_LIMIT = 0x4800, GUEST_CS_LIMIT = 0x4802, GUEST_SS_LIMIT = 0x4804, GUEST_DS_LIMIT = 0x4806,
    GUEST_FS_LIMIT = 0x4808, GUEST_GS_LIMIT = 0x480a, GUEST_LDTR_LIMIT = 0x480c, GUEST_TR_LIMIT = 0x480e,
    GUEST_GDTR_LIMIT = 0x4810, GUEST_IDTR_LIMIT = 0x4812,
    GUEST_ES_AR_BYTES = 0x4814, GUEST_CS_AR_BYTES = 0x4816, GUEST_SS_AR_BYTES = 0x4818,
    GUEST_DS_AR_BYTES = 0x481a, GUEST_FS_AR_BYTES = 0x481c, GUEST_GS_AR_BYTES = 0x481e,
    GUEST_LDTR_AR_BYTES = 0x4820, GUEST_TR_AR_BYTES = 0x4822,
    GUEST_INTERRUPTIBILITY_INFO = 0x4824, GUEST_ACTIVITY_STATE = 0x4826, GUEST_SYSENTER_CS = 0x482a,
    VMX_PREEMPTION_TIMER_VALUE = 0x482e,
    HOST_IA32_SYSENTER_CS = 0x4c00,
    /* natural-width control */
    CR0_GUEST_HOST_MASK = 0x6000, CR4_GUEST_HOST_MASK = 0x6002, CR0_READ_SHADOW = 0x6004,
    CR4_READ_SHADOW = 0x6006,
    /* natural-width read-only data */
    EXIT_QUALIFICATION = 0x6400, GUEST_LINEAR_ADDRESS = 0x640a,
    /* natural-width guest */
    GUEST_CR0 = 0x6800, GUEST_CR3 = 0x6802, GUEST_CR4 = 0x6804,
    GUEST_ES_BASE = 0x6806, GUEST_CS_BASE = 0x6808, GUEST_SS_BASE = 0x680a, GUEST_DS_BASE = 0x680c,
    GUEST_FS_BASE = 0x680e, GUEST_GS_BASE = 0x6810, GUEST_LDTR_BASE = 0x6812, GUEST_TR_BASE = 0x6814,
    GUEST_GDTR_BASE = 0x6816, GUEST_IDTR_BASE = 0x6818, GUEST_DR7 = 0x681a, GUEST_RSP = 0x681c,
    GUEST_RIP = 0x681e, GUEST_RFLAGS = 0x6820, GUEST_PENDING_DBG_EXCEPTIONS = 0x6822,
    GUEST_SYSENTER_ESP = 0x6824, GUEST_SYSENTER_EIP = 0x6826,
    /* natural-width host */
    HOST_CR0 = 0x6c00, HOST_CR3 = 0x6c02, HOST_CR4 = 0x6c04, HOST_FS_BASE = 0x6c06, HOST_GS_BASE = 0x6c08,
    HOST_TR_BASE = 0x6c0a, HOST_GDTR_BASE = 0x6c0c, HOST_IDTR_BASE = 0x6c0e,
    HOST_IA32_SYSENTER_ESP = 0x6c10, HOST_IA32_SYSENTER_EIP = 0x6c12, HOST_RSP = 0x6c14, HOST_RIP = 0x6c16,
};

/* VMX instructions report failure in RFLAGS: CF = VMfailInvalid, ZF = VMfailValid (SDM Vol. 3C 31.2). */
static inline bool vmread_checked(u64 field, u64 *value)
{
    bool fail;
    __asm__ volatile("vmread %2, %1; setbe %0" : "=qm"(fail), "=rm"(*value) : "r"(field) : "cc");
    return !fail;
}

static inline u64 vmread(u64 field)
{
    u64 v = 0;
    vmread_checked(field, &v);
    return v;
}

/*
 * VMREAD / VMWRITE of a field every VMCS has, with this CPU's VMCS current (an exit handler): they
 * cannot fail (VMfail only for an unsupported field or no current VMCS, SDM Vol. 3C 31.3), so the
 * exit's fast path skips the flag check (issue 18).
 */
static inline u64 vmread_current(u64 field)
{
    u64 v;
    __asm__ volatile("vmread %1, %0" : "=r"(v) : "r"(field) : "cc");
    return v;
}

static inline void vmwrite_current(u64 field, u64 value)
{
    __asm__ volatile("vmwrite %1, %0" : : "r"(field), "r"(value) : "cc", "memory");
}

static inline bool vmwrite(u64 field, u64 value)
{
    bool fail;
    __asm__ volatile("vmwrite %2, %1; setbe %0" : "=qm"(fail) : "r"(field), "rm"(value) : "cc", "memory");
    return !fail;
}

/* The guest's CR4 as it sees it: the bits the hypervisor owns come from the read shadow (26.6.6). */
static inline u64 vmx_guest_cr4(void)
{
    u64 m4 = vmread(CR4_GUEST_HOST_MASK);
    return (vmread(GUEST_CR4) & ~m4) | (vmread(CR4_READ_SHADOW) & m4);
}

#endif
