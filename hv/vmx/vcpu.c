/*
 * The VT-x vcpu accessor (vcpu.h): guest state lives in the current VMCS (VMREAD / VMWRITE), the
 * GPRs but RSP in the exit stub's frame.
 */
#include <hv/abi.h>
#include <hv/console.h>
#include <hv/exit_common.h>
#include <hv/guest_mem.h>
#include <hv/panic.h>
#include <hv/trace.h>
#include <hv/vmx/vcpu.h>
#include <hv/vmx/vmcs.h>
#include <hv/x86.h>

#define AR_L (1u << 13)     /* access rights: 64-bit code segment (SDM Vol. 3C 25.4.1, Table 25-2) */
#define AR_DB (1u << 14)

static struct vmx_exit *X(struct vcpu *v)
{
    return (struct vmx_exit *)v;
}

static u64 get_rsp(struct vcpu *v) { (void)v; return vmread(GUEST_RSP); }
static void set_rsp(struct vcpu *v, u64 x) { (void)v; vmwrite(GUEST_RSP, x); }
static u64 get_rip(struct vcpu *v) { (void)v; return vmread(GUEST_RIP); }
static void set_rip(struct vcpu *v, u64 x) { (void)v; vmwrite(GUEST_RIP, x); }
static u64 get_rflags(struct vcpu *v) { (void)v; return vmread(GUEST_RFLAGS); }
static void set_rflags(struct vcpu *v, u64 x) { (void)v; vmwrite(GUEST_RFLAGS, x); }

/* Defined for instruction exits (SDM Vol. 3C 28.2.5); for EPT violations core decodes the instruction. */
static u32 insn_len(struct vcpu *v)
{
    (void)v;
    return (u32)vmread(VM_EXIT_INSTRUCTION_LEN);
}

/* Past the instruction; the STI / MOV-SS blocking it may have set ends with it (26.4.2). */
static u64 advance(struct vcpu *v, u32 len)
{
    (void)v;
    vmwrite(GUEST_RIP, vmread(GUEST_RIP) + len);
    vmwrite(GUEST_INTERRUPTIBILITY_INFO, vmread(GUEST_INTERRUPTIBILITY_INFO) & ~3ull);
    return vmread(GUEST_RFLAGS);
}

static u32 cpl(struct vcpu *v)
{
    (void)v;
    return (u32)(vmread(GUEST_SS_AR_BYTES) >> 5) & 3;     /* SS.DPL is the CPL (SDM Vol. 3A 5.5) */
}

static u32 code_bits(struct vcpu *v)
{
    (void)v;
    u64 ar = vmread(GUEST_CS_AR_BYTES);
    if ((vmread(GUEST_IA32_EFER) & X86_EFER_LMA) && (ar & AR_L))
        return 64;
    if (!(vmread(CR0_READ_SHADOW) & X86_CR0_PE) || (vmread(GUEST_RFLAGS) & X86_RFLAGS_VM))
        return 16;                                      /* real mode, virtual-8086 mode */
    return ar & AR_DB ? 32 : 16;
}

static u64 seg_base(struct vcpu *v, enum vcpu_seg seg)
{
    (void)v;
    return vmread(GUEST_ES_BASE + 2 * (u32)seg);        /* ES..GS bases are 2 apart in the encoding */
}

/* CR2 is not part of the VMCS: VM entry and exit leave the register as it is, so the guest's is live. */
static void set_cr2(struct vcpu *v, u64 value)
{
    (void)v;
    __asm__ volatile("movq %0, %%cr2" : : "r"(value));
}

static void paging(struct vcpu *v, struct guest_paging *out)
{
    (void)v;
    /* The guest's view: the bits the hypervisor owns come from the read shadows (26.6.6). */
    u64 m0 = vmread(CR0_GUEST_HOST_MASK);
    out->cr0 = (vmread(GUEST_CR0) & ~m0) | (vmread(CR0_READ_SHADOW) & m0);
    out->cr3 = vmread(GUEST_CR3);
    out->cr4 = vmx_guest_cr4();
    out->efer = vmread(GUEST_IA32_EFER);
}

/* Event injection (26.6.x, 27.6): software events carry their instruction length (26.8.3). */
static void inject(struct vcpu *v, const struct vcpu_event *e)
{
    (void)v;
    u32 info = INTR_INFO_VALID | (u32)e->type << 8 | e->vector;
    if (e->has_error) {
        info |= INTR_INFO_DELIVER_CODE;
        vmwrite(VM_ENTRY_EXCEPTION_ERROR_CODE, e->error);
    }
    if (e->type >= VCPU_EVT_SW_INT)
        vmwrite(VM_ENTRY_INSTRUCTION_LEN, e->insn_len);
    vmwrite(VM_ENTRY_INTR_INFO, info);
}

/* TF after an emulated instruction: a pending single-step trap, delivered on entry (27.7.3). */
static void single_step(struct vcpu *v)
{
    (void)v;
    vmwrite(GUEST_PENDING_DBG_EXCEPTIONS, vmread(GUEST_PENDING_DBG_EXCEPTIONS) | PENDING_DBG_BS);
}

static void invept_flush(struct vcpu *v)
{
    (void)v;
    vmx_invept_single();
}

void vmx_invept_single(void)
{
    struct {
        u64 eptp, reserved;
    } desc = { vmread(EPT_POINTER), 0 };
    __asm__ volatile("invept %0, %1" : : "m"(desc), "r"(1ull) : "cc", "memory");
}

/*
 * What a real MOV to CR would have done to the TLB: the guest's translations tagged with its VPID
 * (INVVPID, 29.4.3.3). For CR3 the global ones stay where the CPU can keep them (type 3).
 */
static void invvpid(bool keep_globals)
{
    u64 cap = vmx_caps.ept_vpid_cap;
    u64 type = keep_globals && (cap & VPID_CAP_INVVPID_SINGLE_KEEP_GLOBALS) ? 3
               : (cap & VPID_CAP_INVVPID_SINGLE)                           ? 1
                                                                           : 2;
    if (!(cap & VPID_CAP_INVVPID) || !(vmx_caps.cpu2 & CPU2_ENABLE_VPID))
        return;             /* without VPID every VM entry and exit flushes (29.4.3.1) */
    struct {
        u64 vpid, linear;
    } desc = { vmread(VIRTUAL_PROCESSOR_ID), 0 };
    __asm__ volatile("invvpid %0, %1" : : "m"(desc), "r"(type) : "cc", "memory");
}

/*
 * PAE paging under EPT: VM entry loads the PDPTE registers from the VMCS (28.3.2.4), so an emulated
 * write that (re)loads them (MOV CR3, or CR0/CR4 that enter PAE paging) reads the four entries at
 * CR3[31:5] here. A present entry with a reserved bit set is #GP, as the real MOV would raise (4.4.1).
 */
static bool load_pdptes(u64 cr0, u64 cr3, u64 cr4, u64 efer)
{
    if (!(cr0 & X86_CR0_PG) || !(cr4 & X86_CR4_PAE) || (efer & X86_EFER_LME))
        return true;
    u64 pdpte[4];
    const struct guest_paging flat = { 0, 0, 0, 0 };
    if (!guest_read_linear(&flat, cr3 & 0xffffffe0u, pdpte, sizeof(pdpte)))
        return false;
    u64 reserved = 0x1e6ull | ~((1ull << cpu_phys_bits()) - 1);     /* bits 2:1, 8:5, 63:MAXPHYADDR */
    for (int i = 0; i < 4; i++)
        if ((pdpte[i] & 1) && (pdpte[i] & reserved))
            return false;
    for (int i = 0; i < 4; i++)
        vmwrite(GUEST_PDPTR0 + 2 * (u32)i, pdpte[i]);
    return true;
}

/*
 * An emulated MOV to CR0 that turns paging on with EFER.LME set activates IA-32e mode; turning it off
 * deactivates it. The CPU does this itself when the write does not exit; for an emulated write the
 * hypervisor updates EFER.LMA and the "IA-32e mode guest" entry control (26.8.1, 28.3.1.1).
 */
static void update_long_mode(u64 old_cr0, u64 new_cr0)
{
    u64 efer = vmread(GUEST_IA32_EFER), entry = vmread(VM_ENTRY_CONTROLS);
    if (!(old_cr0 & X86_CR0_PG) && (new_cr0 & X86_CR0_PG) && (efer & X86_EFER_LME)) {
        vmwrite(GUEST_IA32_EFER, efer | X86_EFER_LMA);
        vmwrite(VM_ENTRY_CONTROLS, entry | ENTRY_IA32E_MODE_GUEST);
    } else if ((old_cr0 & X86_CR0_PG) && !(new_cr0 & X86_CR0_PG) && (efer & X86_EFER_LMA)) {
        vmwrite(GUEST_IA32_EFER, efer & ~X86_EFER_LMA);
        vmwrite(VM_ENTRY_CONTROLS, entry & ~ENTRY_IA32E_MODE_GUEST);
    }
}

/* MOV to CR: the guest's value goes to the read shadow; the real register keeps the bits VMX fixes. */
static bool write_cr(struct vcpu *v, u32 cr, u64 value)
{
    const struct vmx_caps *c = &vmx_caps;
    struct guest_paging p;
    paging(v, &p);
    switch (cr) {
    case 0: {
        u64 fixed0 = c->cr0_fixed0;
        if (c->cpu2 & CPU2_UNRESTRICTED_GUEST)
            fixed0 &= ~(X86_CR0_PE | X86_CR0_PG);
        if (!load_pdptes(value, p.cr3, p.cr4, p.efer))
            return false;
        update_long_mode(p.cr0, value);
        vmwrite(CR0_READ_SHADOW, value);
        vmwrite(GUEST_CR0, (value | fixed0) & c->cr0_fixed1);
        if ((value ^ p.cr0) & (X86_CR0_PG | X86_CR0_WP | X86_CR0_PE))
            invvpid(false);
        return true;
    }
    case 3:
        /* With CR4.PCIDE, bit 63 asks to keep the TLB (the flush below is a superset). */
        value &= ~(1ull << 63);
        if (!load_pdptes(p.cr0, value, p.cr4, p.efer))
            return false;
        vmwrite(GUEST_CR3, value);
        invvpid(true);
        return true;
    case 4:
        /* Bits outside FIXED1 and CR4.VMXE (VMX hidden) are reserved for the guest: #GP. */
        if (value & (~c->cr4_fixed1 | X86_CR4_VMXE))
            return false;
        if (((value ^ p.cr4) & (X86_CR4_PAE | X86_CR4_PSE | X86_CR4_SMEP)) && !load_pdptes(p.cr0, p.cr3, value, p.efer))
            return false;
        vmwrite(CR4_READ_SHADOW, value);
        vmwrite(GUEST_CR4, value | c->cr4_fixed0);
        if ((value ^ p.cr4) & (X86_CR4_PAE | X86_CR4_PSE | X86_CR4_PGE | X86_CR4_PCIDE | X86_CR4_SMEP | X86_CR4_SMAP))
            invvpid(false);
        return true;
    }
    return false;
}

/* VMX is hidden: FEATURE_CONTROL reads without the VMXON enables, and is locked (writes #GP). */
static int msr(struct vcpu *v, u32 index, bool write, u64 *value)
{
    (void)v;
    if (index != MSR_IA32_FEATURE_CONTROL)
        return VCPU_MSR_PASS;
    if (write)
        return VCPU_MSR_GP;
    *value = rdmsr(MSR_IA32_FEATURE_CONTROL) & ~(FEATURE_CONTROL_VMXON | FEATURE_CONTROL_VMXON_IN_SMX);
    return VCPU_MSR_DONE;
}

/* RDTSC, RDTSCP and RDMSR of IA32_TSC add TSC_OFFSET when the control is on (SDM Vol. 3C 27.3). */
static bool set_tsc_offset(struct vcpu *v, u64 offset)
{
    (void)v;
    return (vmx_caps.cpu & CPU_USE_TSC_OFFSETTING) && vmwrite(TSC_OFFSET, offset);
}

/* NMI injection needs no blocking by STI, MOV SS or NMI (SDM Vol. 3C 27.3.1.5, 26.3.1.5 checks). */
static bool nmi_allowed(struct vcpu *v)
{
    (void)v;
    return !(vmread(GUEST_INTERRUPTIBILITY_INFO) & 0xb);
}

static void nmi_window(struct vcpu *v, bool on)
{
    (void)v;
    if (!(vmx_caps.pin & PIN_VIRTUAL_NMIS))
        return;                         /* NMI-window exiting needs virtual NMIs (26.2.1.1) */
    u64 cpu = vmread(CPU_BASED_VM_EXEC_CONTROL);
    vmwrite(CPU_BASED_VM_EXEC_CONTROL, on ? cpu | CPU_NMI_WINDOW_EXITING : cpu & ~(u64)CPU_NMI_WINDOW_EXITING);
}

/*
 * An exit after the next instruction: the monitor trap flag (SDM Vol. 3C 26.5.2) where the CPU has it
 * (Bochs 2.7 does not), else RFLAGS.TF with #DB in the exception bitmap; the guest's own TF is kept.
 */
static bool step_arm(struct vcpu *v, bool on)
{
    struct vmx_cpu *c = X(v)->v;
    u64 may = rdmsr(vmx_caps.true_ctls ? MSR_IA32_VMX_TRUE_PROCBASED : MSR_IA32_VMX_PROCBASED_CTLS) >> 32;
    if (may & CPU_MONITOR_TRAP_FLAG) {
        u64 cpu = vmread(CPU_BASED_VM_EXEC_CONTROL);
        vmwrite(CPU_BASED_VM_EXEC_CONTROL, on ? cpu | CPU_MONITOR_TRAP_FLAG : cpu & ~(u64)CPU_MONITOR_TRAP_FLAG);
        return true;
    }
    u64 rflags = vmread(GUEST_RFLAGS);
    if (on) {
        /*
         * Every exception vector exits meanwhile (#MC and the NMI bit aside): a faulting instruction
         * clears TF into the guest's handler (SDM Vol. 3A 17.3.1.4), which must not run with the page
         * redirected (apic_step.h apic_step_cut).
         */
        c->step_tf = true;
        c->step_guest_tf = (rflags & X86_RFLAGS_TF) != 0;
        c->step_exc_bitmap = (u32)vmread(EXCEPTION_BITMAP);
        vmwrite(GUEST_RFLAGS, rflags | X86_RFLAGS_TF);
        vmwrite(EXCEPTION_BITMAP, ~((1u << VEC_NMI) | (1u << VEC_MC)));
    } else if (c->step_tf) {
        c->step_tf = false;
        vmwrite(GUEST_RFLAGS, (rflags & ~X86_RFLAGS_TF) | (c->step_guest_tf ? X86_RFLAGS_TF : 0));
        vmwrite(EXCEPTION_BITMAP, c->step_exc_bitmap);
    }
    return true;
}

static void dump(struct vcpu *vc, const char *why)
{
    struct vmx_exit *x = X(vc);
    /* For post-mortem tools, before anything else can fail: the fatal exit's record and the VMCS. */
    trace_exit_unresumed(vc->pc, vc->rec);
    vmx_snapshot(vc->pc, HV_SNAP_FATAL);
    printk("vmx: CPU %u: %s: exit reason %u (%s) qualification 0x%lx\n", vc->pc->index, why, x->reason & 0xffff,
           vmx_exit_reason_name(x->reason & 0xffff), x->qual);
    printk("  guest RIP=0x%lx RSP=0x%lx RFLAGS=0x%lx CR0=0x%lx CR3=0x%lx CR4=0x%lx\n", vmread(GUEST_RIP),
           vmread(GUEST_RSP), vmread(GUEST_RFLAGS), vmread(GUEST_CR0), vmread(GUEST_CR3), vmread(GUEST_CR4));
    printk("  GPA=0x%lx GLA=0x%lx intr-info=0x%lx idt-vectoring=0x%lx insn-len=%lu\n", vmread(GUEST_PHYSICAL_ADDRESS),
           vmread(GUEST_LINEAR_ADDRESS), vmread(VM_EXIT_INTR_INFO), vmread(IDT_VECTORING_INFO),
           vmread(VM_EXIT_INSTRUCTION_LEN));
    exit_print_gprs(vc);
}

const struct vcpu_ops vmx_vcpu_ops = {
    VCPU_OPS_ACCESSORS,
    .nmi_window = nmi_window,
    .stage2_flush = invept_flush,
};
