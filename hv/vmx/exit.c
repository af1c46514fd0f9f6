/*
 * doVmxExitHandler: the exit dispatcher. A table indexed by basic exit reason (ACRN style), with the
 * VM-entry-failure bit checked first (SDM Vol. 3C 27.8). Every exit is counted through core's trace
 * API. A reason without a handler dumps state and stops the run: never resume blindly.
 */
#include <hv/apic_emul.h>
#include <hv/guest.h>
#include <hv/abi.h>
#include <hv/console.h>
#include <hv/cpuid_leaves.h>
#include <hv/fixup.h>
#include <hv/hypercall.h>
#include <hv/memmap.h>
#include <hv/panic.h>
#include <hv/stage2.h>
#include <hv/trace.h>
#include <hv/vmx/vmcs.h>
#include <hv/vmx/vmx.h>
#include <hv/x86.h>

extern struct stage2 vmx_ept;

struct exit_ctx {
    struct percpu *pc;
    struct vmx_cpu *v;
    struct guest_regs *regs;
    u32 reason;
    u64 qual;
    struct hv_record *rec;      /* this exit's trace record, published once the exit is handled */
};

typedef void (*exit_handler)(struct exit_ctx *);

static u64 *gpr(struct exit_ctx *x, u32 n)
{
    return &((u64 *)x->regs)[n & 15];
}

/* RSP is not in the saved frame: it lives in the VMCS. */
static u64 read_gpr(struct exit_ctx *x, u32 n)
{
    return (n & 15) == 4 ? vmread(GUEST_RSP) : *gpr(x, n);
}

static void write_gpr(struct exit_ctx *x, u32 n, u64 v)
{
    if ((n & 15) == 4)
        vmwrite(GUEST_RSP, v);
    else
        *gpr(x, n) = v;
}

/* Past the exiting instruction; the STI / MOV-SS blocking it may have set ends with it (26.4.2). */
static void skip_instruction(void)
{
    vmwrite(GUEST_RIP, vmread(GUEST_RIP) + vmread(VM_EXIT_INSTRUCTION_LEN));
    vmwrite(GUEST_INTERRUPTIBILITY_INFO, vmread(GUEST_INTERRUPTIBILITY_INFO) & ~3ull);
}

/* Event injection (26.6.x, 27.6): the exception is delivered through the guest IDT on entry. */
static void inject_exception(u32 vector, bool has_error, u32 error)
{
    u32 info = INTR_INFO_VALID | INTR_TYPE_HARD_EXCEPTION | vector;
    if (has_error) {
        info |= INTR_INFO_DELIVER_CODE;
        vmwrite(VM_ENTRY_EXCEPTION_ERROR_CODE, error);
    }
    vmwrite(VM_ENTRY_INTR_INFO, info);
}

static void inject_ud(void) { inject_exception(6, false, 0); }
static void inject_gp0(void) { inject_exception(13, true, 0); }

static u32 guest_cpl(void)
{
    return (u32)(vmread(GUEST_SS_AR_BYTES) >> 5) & 3;     /* SS.DPL is the CPL (SDM Vol. 3A 5.5) */
}

static void dump_state(struct exit_ctx *x, const char *why)
{
    /* For post-mortem tools, before anything else can fail: the fatal exit's record and the VMCS. */
    trace_exit(x->pc, x->rec);
    vmx_snapshot(x->pc, HV_SNAP_FATAL);
    printk("vmx: CPU %u: %s: exit reason %u (%s) qualification 0x%lx\n", x->pc->index, why, x->reason & 0xffff,
           vmx_exit_reason_name(x->reason & 0xffff), x->qual);
    printk("  guest RIP=0x%lx RSP=0x%lx RFLAGS=0x%lx CR0=0x%lx CR3=0x%lx CR4=0x%lx\n", vmread(GUEST_RIP),
           vmread(GUEST_RSP), vmread(GUEST_RFLAGS), vmread(GUEST_CR0), vmread(GUEST_CR3), vmread(GUEST_CR4));
    printk("  GPA=0x%lx GLA=0x%lx intr-info=0x%lx idt-vectoring=0x%lx insn-len=%lu\n", vmread(GUEST_PHYSICAL_ADDRESS),
           vmread(GUEST_LINEAR_ADDRESS), vmread(VM_EXIT_INTR_INFO), vmread(IDT_VECTORING_INFO),
           vmread(VM_EXIT_INSTRUCTION_LEN));
    struct guest_regs *r = x->regs;
    printk("  RAX=0x%lx RBX=0x%lx RCX=0x%lx RDX=0x%lx RSI=0x%lx RDI=0x%lx RBP=0x%lx\n", r->rax, r->rbx, r->rcx,
           r->rdx, r->rsi, r->rdi, r->rbp);
    printk("  R8=0x%lx R9=0x%lx R10=0x%lx R11=0x%lx R12=0x%lx R13=0x%lx R14=0x%lx R15=0x%lx\n", r->r8, r->r9,
           r->r10, r->r11, r->r12, r->r13, r->r14, r->r15);
}

/* ---- handlers ---------------------------------------------------------------------------------- */

static void handle_cpuid(struct exit_ctx *x)
{
    u32 leaf = (u32)x->regs->rax, sub = (u32)x->regs->rcx;
    u32 a, b, c, d;
    u64 cr4 = 0;
    if (leaf == 1 || leaf == 7) {   /* only they mirror CR4 bits: no VMREADs on the other (storm) leaves */
        u64 mask = vmread(CR4_GUEST_HOST_MASK);     /* the guest's view: shadowed bits from the shadow */
        cr4 = (vmread(GUEST_CR4) & ~mask) | (vmread(CR4_READ_SHADOW) & mask);
    }
    hv_guest_cpuid(leaf, sub, cr4, &a, &b, &c, &d);     /* hypervisor leaves, CPUID.1:ECX[31] set */
    if (leaf == 1)
        c &= ~(1u << 5);    /* VMX: not offered to the guest */
    x->regs->rax = a;
    x->regs->rbx = b;
    x->regs->rcx = c;
    x->regs->rdx = d;
    skip_instruction();
}

static bool is_vmx_msr(u32 msr)
{
    return msr >= MSR_IA32_VMX_BASIC && msr <= MSR_IA32_VMX_VMFUNC;
}

/* RDMSR/WRMSR are executed for real; an MSR that faults raises #GP in the guest, as on hardware. */
static void handle_msr_read(struct exit_ctx *x)
{
    u32 msr = (u32)x->regs->rcx;
    u64 value;
    if (is_vmx_msr(msr)) {
        inject_gp0();                   /* VMX is hidden: its MSRs do not exist for the guest */
        return;
    }
    if (safe_rdmsr(msr, &value)) {
        inject_gp0();
        return;
    }
    if (msr == MSR_IA32_FEATURE_CONTROL)
        value &= ~(FEATURE_CONTROL_VMXON | FEATURE_CONTROL_VMXON_IN_SMX);
    x->regs->rax = (u32)value;
    x->regs->rdx = value >> 32;
    skip_instruction();
}

static void handle_msr_write(struct exit_ctx *x)
{
    u32 msr = (u32)x->regs->rcx;
    u64 value = (x->regs->rdx << 32) | (u32)x->regs->rax;
    if (msr == MSR_X2APIC_ICR) {
        apic_emul_x2apic_icr(x->pc, value);     /* the guest's INIT / SIPI are emulated (apic_emul.h) */
        skip_instruction();
        return;
    }
    if (msr == MSR_APIC_BASE) {
        if (apic_emul_apic_base_write(value))
            skip_instruction();
        else
            inject_gp0();
        return;
    }
    /* FEATURE_CONTROL is locked (writes #GP on hardware too); VMX MSRs are read-only or hidden. */
    if (msr == MSR_IA32_FEATURE_CONTROL || is_vmx_msr(msr) || safe_wrmsr(msr, value)) {
        inject_gp0();
        return;
    }
    skip_instruction();
}

static void handle_invd(struct exit_ctx *x)
{
    (void)x;
    /* INVD would drop dirty lines the hypervisor owns: give it WBINVD semantics instead. */
    __asm__ volatile("wbinvd" ::: "memory");
    skip_instruction();
}

static void handle_vmcall(struct exit_ctx *x)
{
    /* Only the guest kernel may call the hypervisor; a user-mode VMCALL is #UD as on bare metal. */
    if (guest_cpl() != 0) {
        inject_ud();
        return;
    }
    x->regs->rax = hypercall_dispatch(x->pc, x->regs->rax, x->regs->rbx);
    skip_instruction();
}

static void handle_virt_insn(struct exit_ctx *x)
{
    (void)x;
    inject_ud();        /* VMX is not exposed: its instructions are undefined for the guest */
}

static void handle_exception(struct exit_ctx *x)
{
    u32 info = (u32)vmread(VM_EXIT_INTR_INFO);
    u32 vector = info & 0xff, type = (info >> 8) & 7;
    if (type == 2) {                    /* NMI: hand it back to the guest (27.2.2) */
        vmwrite(VM_ENTRY_INTR_INFO, INTR_INFO_VALID | INTR_TYPE_NMI | 2);
        return;
    }
    if (type != 3) {
        dump_state(x, "unexpected exception type");
        hv_exit(HV_STATUS_FAIL, "vmx_unhandled_exit");
    }
    /* Reflect the hardware exception the bitmap trapped, with its error code. */
    inject_exception(vector, info & INTR_INFO_DELIVER_CODE, (u32)vmread(VM_EXIT_INTR_ERROR_CODE));
}

static bool cr0_valid(u64 v)
{
    if (v >> 32)
        return false;                                   /* reserved bits 63:32 */
    if ((v & (1ull << 31)) && !(v & 1))
        return false;                                   /* PG without PE */
    if ((v & (1ull << 29)) && !(v & (1ull << 30)))
        return false;                                   /* NW without CD */
    return true;
}

/* MOV to CR: the guest's value goes to the read shadow; the real register keeps the bits we own. */
/*
 * An emulated MOV to CR0 that turns paging on with EFER.LME set activates IA-32e mode; turning it off
 * deactivates it. The CPU does this itself when the write does not exit; for an emulated write the
 * hypervisor updates EFER.LMA and the "IA-32e mode guest" entry control (SDM Vol. 3C 26.8.1, 28.3.1.1).
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

static void write_cr(struct exit_ctx *x, u32 cr, u64 v)
{
    const struct vmx_caps *c = &vmx_caps;
    switch (cr) {
    case 0: {
        if (!cr0_valid(v)) {
            inject_gp0();
            return;
        }
        u64 fixed0 = c->cr0_fixed0;
        if (c->cpu2 & CPU2_UNRESTRICTED_GUEST)
            fixed0 &= ~(1ull | (1ull << 31));
        update_long_mode(vmread(GUEST_CR0), v);
        vmwrite(CR0_READ_SHADOW, v);
        vmwrite(GUEST_CR0, (v | fixed0) & c->cr0_fixed1);
        break;
    }
    case 3:
        /* With CR4.PCIDE, bit 63 asks to keep the TLB; VPID-tagged entries are flushed by the CPU otherwise. */
        vmwrite(GUEST_CR3, v & ~(1ull << 63));
        break;
    case 4:
        /* Bits outside FIXED1 and CR4.VMXE (VMX hidden) are reserved for the guest: #GP. */
        if (v & (~c->cr4_fixed1 | CR4_VMXE)) {
            inject_gp0();
            return;
        }
        vmwrite(CR4_READ_SHADOW, v);
        vmwrite(GUEST_CR4, v | c->cr4_fixed0);
        break;
    default:
        dump_state(x, "MOV to an unhandled control register");
        hv_exit(HV_STATUS_FAIL, "vmx_unhandled_exit");
    }
    (void)x;
    skip_instruction();
}

static void handle_cr_access(struct exit_ctx *x)
{
    /* Exit qualification for control-register accesses (SDM Vol. 3C 28.2.1, Table 28-3). */
    u32 cr = x->qual & 0xf, type = (x->qual >> 4) & 3, reg = (x->qual >> 8) & 0xf;
    switch (type) {
    case 0:                                         /* MOV to CR */
        write_cr(x, cr, read_gpr(x, reg));
        return;
    case 1:                                         /* MOV from CR (CR3 with CR3-store exiting) */
        write_gpr(x, reg, cr == 3 ? vmread(GUEST_CR3) : vmread(CR0_READ_SHADOW));
        skip_instruction();
        return;
    case 2: {                                       /* CLTS */
        u64 shadow = vmread(CR0_READ_SHADOW) & ~(1ull << 3);
        vmwrite(CR0_READ_SHADOW, shadow);
        vmwrite(GUEST_CR0, vmread(GUEST_CR0) & ~(1ull << 3));
        skip_instruction();
        return;
    }
    case 3: {                                       /* LMSW: only PE, MP, EM, TS; it cannot clear PE */
        u64 src = (x->qual >> 16) & 0xf, shadow = vmread(CR0_READ_SHADOW);
        write_cr(x, 0, (shadow & ~0xeull) | (src & 0xf) | (shadow & 1));
        return;
    }
    }
}

static void handle_xsetbv(struct exit_ctx *x)
{
    u32 index = (u32)x->regs->rcx;
    u64 value = (x->regs->rdx << 32) | (u32)x->regs->rax;
    /* Executed for real: the CPU itself checks XCR0 validity (SDM Vol. 2C XSETBV) and #GPs. */
    if (safe_xsetbv(index, value)) {
        inject_gp0();
        return;
    }
    skip_instruction();
}

/* IN / OUT to a port set in the I/O bitmaps (exit qualification: SDM Vol. 3C 28.2.1, Table 28-5). */
static void handle_io(struct exit_ctx *x)
{
    u16 port = (u16)(x->qual >> 16);
    u32 size = (u32)(x->qual & 7) + 1;
    if (x->qual & (1u << 4)) {
        dump_state(x, "string I/O to an intercepted port");
        hv_exit(HV_STATUS_FAIL, "vmx_string_io");
    }
    if (x->qual & (1u << 3)) {
        u32 in = guest_io_in(port, size);
        u64 keep = size == 4 ? 0 : x->regs->rax & ~((1ull << (8 * size)) - 1);
        x->regs->rax = keep | in;
    } else {
        guest_io_out(x->pc, port, size, (u32)(x->regs->rax & (size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1)));
    }
    skip_instruction();
}

static void handle_fatal(struct exit_ctx *x)
{
    dump_state(x, x->reason == EXIT_REASON_TRIPLE_FAULT ? "guest triple fault" : "EPT misconfiguration");
    hv_exit(HV_STATUS_FAIL, x->reason == EXIT_REASON_TRIPLE_FAULT ? "guest_triple_fault" : "ept_misconfig");
}

/* INVEPT single-context (SDM Vol. 3C 29.4.3.1): drop cached translations derived from this EPTP. */
static void invept_single(void)
{
    struct {
        u64 eptp, reserved;
    } desc = { vmread(EPT_POINTER), 0 };
    __asm__ volatile("invept %0, %1" : : "m"(desc), "r"(1ull) : "cc", "memory");
}

/*
 * A guest store to the read-only xAPIC page: emulated or written through (apic_emul.c), stepped over.
 * The VM-exit instruction length is not defined for EPT violations (SDM Vol. 3C 28.2.5): it is decoded.
 */
static void emulate_apic_store(struct exit_ctx *x, u64 gpa)
{
    u64 efer = vmread(GUEST_IA32_EFER);
    struct apic_store_exit e = {
        .paging = { vmread(GUEST_CR0), vmread(GUEST_CR3), vmread(GUEST_CR4), efer },
        .rip_linear = vmread(GUEST_CS_BASE) + vmread(GUEST_RIP),
        .long_mode = (efer & X86_EFER_LMA) && (vmread(GUEST_CS_AR_BYTES) & (1u << 13)),   /* CS.L */
        .gpr = (const u64 *)x->regs,
        .rsp = vmread(GUEST_RSP),
    };
    u32 len = apic_emul_guest_store(x->pc, &e, gpa, x->rec);
    if (!len) {
        dump_state(x, "undecodable APIC write");
        hv_exit(HV_STATUS_FAIL, "apic_write");
    }
    vmwrite(GUEST_RIP, vmread(GUEST_RIP) + len);
    vmwrite(GUEST_INTERRUPTIBILITY_INFO, vmread(GUEST_INTERRUPTIBILITY_INFO) & ~3ull);   /* STI / MOV SS blocking */
}

static void handle_ept_violation(struct exit_ctx *x)
{
    /* Exit qualification for EPT violations (28.2.1, Table 28-7). */
    u64 gpa = vmread(GUEST_PHYSICAL_ADDRESS);
    if (guest_gpa_is_hv(gpa)) {
        /* Hypervisor memory is absent from the EPT (guest_isolation.c): never mapped, never written. */
        x->rec->flags |= HV_REC_SECURITY;
        security_event(x->pc->index, "vmx", gpa, x->qual & 2 ? "write" : x->qual & 4 ? "fetch" : "read",
                       vmread(GUEST_RIP));
        inject_exception(13, true, 0);
        return;
    }
    if (apic_emul_is_apic(gpa) && (x->qual & 2)) {
        emulate_apic_store(x, gpa);
        return;
    }
    /* A first touch of a memory-map hole: map that page and let the guest retry (stage2_holes.c). */
    if (stage2_map_hole(&vmx_ept, &hv_memmap, gpa)) {
        invept_single();
        return;
    }
    printk("vmx: CPU %u: EPT violation at GPA 0x%lx (%s%s%s, entry %c%c%c) RIP=0x%lx\n", x->pc->index, gpa,
           x->qual & 1 ? "read" : "", x->qual & 2 ? "write" : "", x->qual & 4 ? "fetch" : "",
           x->qual & 8 ? 'r' : '-', x->qual & 16 ? 'w' : '-', x->qual & 32 ? 'x' : '-', vmread(GUEST_RIP));
    dump_state(x, "EPT violation without a handler");
    hv_exit(HV_STATUS_FAIL, "ept_violation");
}

struct exit_entry {
    exit_handler fn;
    u32 kind;
};

static const struct exit_entry exit_table[VMX_EXIT_REASON_COUNT] = {
    [EXIT_REASON_EXCEPTION_NMI] = { handle_exception, HV_EXIT_EXCEPTION },
    [EXIT_REASON_TRIPLE_FAULT] = { handle_fatal, HV_EXIT_TRIPLE_FAULT },
    [EXIT_REASON_CPUID] = { handle_cpuid, HV_EXIT_CPUID },
    [EXIT_REASON_IO_INSTRUCTION] = { handle_io, HV_EXIT_IO },
    [EXIT_REASON_INVD] = { handle_invd, HV_EXIT_INVD },
    [EXIT_REASON_VMCALL] = { handle_vmcall, HV_EXIT_VMCALL },
    [EXIT_REASON_VMCLEAR] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMLAUNCH] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMPTRLD] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMPTRST] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMREAD] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMRESUME] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMWRITE] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMXOFF] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMXON] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_INVEPT] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_INVVPID] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMFUNC] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_CR_ACCESS] = { handle_cr_access, HV_EXIT_CR_ACCESS },
    [EXIT_REASON_MSR_READ] = { handle_msr_read, HV_EXIT_MSR_READ },
    [EXIT_REASON_MSR_WRITE] = { handle_msr_write, HV_EXIT_MSR_WRITE },
    [EXIT_REASON_EPT_VIOLATION] = { handle_ept_violation, HV_EXIT_STAGE2_FAULT },
    [EXIT_REASON_EPT_MISCONFIG] = { handle_fatal, HV_EXIT_OTHER },
    [EXIT_REASON_WBINVD] = { handle_invd, HV_EXIT_INVD },
    [EXIT_REASON_XSETBV] = { handle_xsetbv, HV_EXIT_XSETBV },
};

/* A failed VM entry (27.8): the basic reason says which class of guest state check failed. */
static __noreturn void entry_failure(struct exit_ctx *x)
{
    u32 basic = x->reason & 0xffff;
    const char *why = basic == EXIT_REASON_INVALID_GUEST_STATE ? "invalid guest state"
                      : basic == EXIT_REASON_MSR_LOADING    ? "MSR loading"
                      : basic == EXIT_REASON_MACHINE_CHECK  ? "machine-check event"
                                                            : "unknown cause";
    /* For invalid guest state the qualification is 0, 2 (PDPTE loading) or 3 (NMI injection), 28.8. */
    char what[96];
    snprintf(what, sizeof(what), "VM-entry failure, %s%s", why,
             x->qual == 2 ? " (PDPTE loading)" : x->qual == 3 ? " (NMI injection)" : "");
    dump_state(x, what);
    hv_exit(HV_STATUS_FAIL, "vmx_entry_failure");
}

/* The operands that make an exit meaningful in a trace (abi.h struct hv_record arg0/arg1/gpa). */
static void record_operands(const struct exit_ctx *x, u32 basic, struct hv_record *r)
{
    const struct guest_regs *g = x->regs;
    switch (basic) {
    case EXIT_REASON_CPUID:
        r->arg0 = (u32)g->rax;                          /* leaf */
        r->arg1 = (u32)g->rcx;                          /* sub-leaf */
        break;
    case EXIT_REASON_MSR_READ:
    case EXIT_REASON_MSR_WRITE:
    case EXIT_REASON_XSETBV:
        r->arg0 = (u32)g->rcx;                          /* MSR index / XCR number */
        r->arg1 = basic == EXIT_REASON_MSR_READ ? 0 : (g->rdx << 32) | (u32)g->rax;
        break;
    case EXIT_REASON_CR_ACCESS:
        r->arg0 = x->qual & 0xf;                        /* CR number */
        if (((x->qual >> 4) & 3) == 0)                  /* MOV to CR: the value written */
            r->arg1 = ((x->qual >> 8) & 0xf) == 4 ? vmread(GUEST_RSP) : ((const u64 *)g)[(x->qual >> 8) & 0xf];
        break;
    case EXIT_REASON_VMCALL:
        r->arg0 = g->rax;                               /* hypercall function */
        r->arg1 = g->rbx;                               /* argument */
        break;
    case EXIT_REASON_EXCEPTION_NMI:
        r->arg0 = vmread(VM_EXIT_INTR_INFO);            /* vector, type, error-code valid */
        r->arg1 = vmread(VM_EXIT_INTR_ERROR_CODE);
        break;
    case EXIT_REASON_EPT_VIOLATION:
    case EXIT_REASON_EPT_MISCONFIG:
        r->gpa = vmread(GUEST_PHYSICAL_ADDRESS);
        r->arg0 = vmread(GUEST_LINEAR_ADDRESS);
        break;
    case EXIT_REASON_IO_INSTRUCTION:
        r->arg0 = x->qual >> 16;                        /* port */
        r->arg1 = g->rax;
        break;
    }
}

void vmx_exit_dispatch(struct guest_regs *regs)
{
    struct percpu *pc = this_cpu();
    pc->in_root = 1;
    pc->exit_regs = (u64 *)regs;
    struct hv_record rec = { 0 };
    struct exit_ctx x = { pc, pc->vendor, regs, (u32)vmread(VM_EXIT_REASON), vmread(EXIT_QUALIFICATION), &rec };
    u32 basic = x.reason & 0xffff;
    rec.reason = (u16)basic;
    rec.qual = x.qual;
    rec.rip = vmread(GUEST_RIP);
    rec.insn_len = (u8)vmread(VM_EXIT_INSTRUCTION_LEN);
    if (x.reason & EXIT_REASON_ENTRY_FAILURE) {
        rec.kind = HV_EXIT_ENTRY_FAILURE;
        entry_failure(&x);
    }
    const struct exit_entry *e = basic < VMX_EXIT_REASON_COUNT ? &exit_table[basic] : NULL;
    rec.kind = (u8)(e && e->fn ? e->kind : HV_EXIT_OTHER);
    record_operands(&x, basic, &rec);
    if (basic < VMX_EXIT_REASON_COUNT)
        x.v->exits[basic]++;
    if (!e || !e->fn) {
        dump_state(&x, "exit without a handler");
        hv_exit(HV_STATUS_FAIL, "vmx_unhandled_exit");
    }
    e->fn(&x);
    if (vmread(VM_ENTRY_INTR_INFO) & INTR_INFO_VALID)
        rec.flags |= HV_REC_INJECTED;
    trace_exit(pc, &rec);
    pc->in_root = 0;
}

__noreturn void vmx_resume_failed(void)
{
    u32 err = (u32)vmread(VM_INSTRUCTION_ERROR);
    hv_fail(HV_STATUS_FAIL, "vmresume_failed", "CPU %u: VMRESUME failed: VM-instruction error %u (%s)",
            this_cpu()->index, err, vmx_instruction_error_name(err));
}
