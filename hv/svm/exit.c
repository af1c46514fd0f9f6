/*
 * The #VMEXIT dispatcher (the AMD mirror of vmx/exit.c). A designated-initializer table keyed by exit
 * code for the dense range 0x00-0xFF (AMD APM Vol. 2 Appendix C); #NPF (0x400) and VMEXIT_INVALID
 * (-1) are checked separately. Every exit is counted through core's trace API. A code without a
 * handler dumps the VMCB and stops the run: never resume blindly.
 */
#include <hv/apic_emul.h>
#include <hv/guest.h>
#include <hv/guest_mem.h>
#include <hv/abi.h>
#include <hv/console.h>
#include <hv/cpuid_leaves.h>
#include <hv/fixup.h>
#include <hv/hypercall.h>
#include <hv/memmap.h>
#include <hv/panic.h>
#include <hv/stage2.h>
#include <hv/svm/svm.h>
#include <hv/trace.h>
#include <hv/x86.h>

extern struct stage2 svm_npt;

#define CR0_PE (1ull << 0)
#define CR0_NW (1ull << 29)
#define CR0_CD (1ull << 30)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define CR4_PCIDE (1ull << 17)
#define SEG_ATTR_L (1u << 9)

struct exit_ctx {
    struct percpu *pc;
    struct svm_cpu *s;
    struct vmcb *v;
    struct guest_regs *regs;
    u64 code;
    struct hv_record *rec;      /* this exit's trace record, published once the exit is handled */
};

typedef void (*exit_handler)(struct exit_ctx *);

/* RSP is in the VMCB; RAX too, but the dispatcher keeps it in the frame while handlers run. */
static u64 read_gpr(struct exit_ctx *x, u32 n)
{
    return (n & 15) == 4 ? x->v->save.rsp : ((u64 *)x->regs)[n & 15];
}

static void inject_exception(struct exit_ctx *x, u32 vector, bool has_error, u32 error)
{
    /* EVENTINJ (APM 15.20): delivered through the guest IDT by the next VMRUN. */
    u64 ev = SVM_EVT_VALID | SVM_EVT_TYPE_EXCEPT | vector;
    if (has_error)
        ev |= SVM_EVT_ERROR_VALID | ((u64)error << 32);
    x->v->control.event_inj = ev;
}

static void inject_ud(struct exit_ctx *x) { inject_exception(x, 6, false, 0); }
static void inject_gp0(struct exit_ctx *x) { inject_exception(x, 13, true, 0); }

static void flush_guest_tlb(struct exit_ctx *x)
{
    /* TLB_CONTROL (APM 15.16.1): this ASID only where the CPU can; QEMU TCG implements only "all". */
    x->v->control.tlb_control = svm_caps.flush_by_asid ? SVM_TLB_FLUSH_GUEST : SVM_TLB_FLUSH_ALL;
}

static void dump_state(struct exit_ctx *x, const char *why)
{
    /* For post-mortem tools, before anything else can fail: the fatal exit's record and the VMCB. */
    trace_exit(x->pc, x->rec);
    svm_snapshot(x->pc, HV_SNAP_FATAL);
    printk("svm: CPU %u: %s: exit code 0x%lx (%s) exitinfo1=0x%lx exitinfo2=0x%lx\n", x->pc->index, why, x->code,
           svm_exit_name(x->code), x->v->control.exitinfo1, x->v->control.exitinfo2);
    svm_dump_vmcb(x->v);
    struct guest_regs *r = x->regs;
    printk("  RAX=0x%lx RBX=0x%lx RCX=0x%lx RDX=0x%lx RSI=0x%lx RDI=0x%lx RBP=0x%lx\n", r->rax, r->rbx, r->rcx,
           r->rdx, r->rsi, r->rdi, r->rbp);
    printk("  R8=0x%lx R9=0x%lx R10=0x%lx R11=0x%lx R12=0x%lx R13=0x%lx R14=0x%lx R15=0x%lx\n", r->r8, r->r9,
           r->r10, r->r11, r->r12, r->r13, r->r14, r->r15);
}

/*
 * The bytes at guest CS:RIP, read through the guest's own paging (guest_mem.c): a blue-pill guest
 * shares the hypervisor's identity map, a loaded OS has its own page tables. False if not mapped.
 */
static bool fetch_insn(struct exit_ctx *x, u8 *buf, u32 len)
{
    const struct vmcb *v = x->v;
    struct guest_paging p = { v->save.cr0, v->save.cr3, v->save.cr4, v->save.efer };
    return guest_read_linear(&p, v->save.cs.base + v->save.rip, buf, len);
}

/*
 * Past the exiting instruction: next_rip when the CPU saves it (NRIPS, APM 15.7.1), else by decoding
 * the instruction at guest RIP. The STI / MOV-SS shadow ends with the instruction (15.21.5).
 */
static void skip_instruction(struct exit_ctx *x)
{
    struct vmcb *v = x->v;
    u64 next = x->s->nrips ? v->control.next_rip : 0;
    if (!next) {
        u8 b[4] = { 0 };
        u32 len = fetch_insn(x, b, sizeof(b)) ? svm_insn_len(b) : 0;
        if (!len) {
            printk("svm: CPU %u: cannot decode the length of the exiting instruction: %02x %02x %02x %02x\n",
                   x->pc->index, b[0], b[1], b[2], b[3]);
            dump_state(x, "instruction length unknown");
            hv_exit(HV_STATUS_FAIL, "svm_insn_len");
        }
        next = v->save.rip + len;
    }
    x->rec->insn_len = (u8)(next - v->save.rip);
    v->save.rip = next;
    v->control.interrupt_shadow &= ~1ull;
}

/* ---- handlers ---------------------------------------------------------------------------------- */

static void handle_cpuid(struct exit_ctx *x)
{
    u32 leaf = (u32)x->regs->rax, sub = (u32)x->regs->rcx;
    u32 a, b, c, d;
    hv_guest_cpuid(leaf, sub, x->v->save.cr4, &a, &b, &c, &d);     /* hypervisor leaves, CPUID.1:ECX[31] set */
    if (leaf == 0x80000001)
        c &= ~CPUID_80000001_ECX_SVM;               /* SVM: not offered to the guest */
    else if (leaf == 0x8000000a)
        a = b = c = d = 0;                          /* SVM revision and features: none (APM E.4.9) */
    x->regs->rax = a;
    x->regs->rbx = b;
    x->regs->rcx = c;
    x->regs->rdx = d;
    skip_instruction(x);
}

static bool is_vmx_msr(u32 msr)
{
    return msr >= MSR_IA32_VMX_BASIC && msr <= MSR_IA32_VMX_VMFUNC;
}

/*
 * The MSRPM covers the three ranges AMD defines MSRs in (APM 15.11); an access outside them always
 * exits. Such an MSR is not offered to the guest: #GP without executing it. (Executing it would not
 * do: QEMU TCG's RDMSR returns 0 for any unknown MSR instead of #GP. Limitation: AMD's SMCA bank
 * MSRs at C000_2000h lie outside the map too and are hidden as well.)
 */
static bool in_msrpm_range(u32 msr)
{
    return msr <= 0x1fff || msr - 0xc0000000 <= 0x1fff || msr - 0xc0010000 <= 0x1fff;
}

/* EFER as the guest may write it: SVME is hidden (kept 1 underneath), LMA is read-only (APM 3.1.7). */
static bool write_efer(struct exit_ctx *x, u64 value)
{
    struct vmcb_save *s = &x->v->save;
    u64 allowed = EFER_SCE | EFER_LME | EFER_LMA;
    if (svm_caps.cpuid_80000001_edx & (1u << 20))
        allowed |= EFER_NXE;
    if (svm_caps.cpuid_80000001_edx & (1u << 25))
        allowed |= EFER_FFXSR;
    if (value & ~allowed)
        return false;                               /* reserved, or SVME (SVM hidden) */
    if (((value ^ s->efer) & EFER_LME) && (s->cr0 & CR0_PG))
        return false;                               /* LME changes only with paging off */
    s->efer = (value & ~EFER_LMA) | (s->efer & EFER_LMA) | EFER_SVME;
    return true;
}

/*
 * RDMSR/WRMSR (EXITINFO1 0 = read, 1 = write; APM 15.11) are executed for real; an MSR that faults
 * raises #GP in the guest, as on hardware. SVM's own MSRs are virtual: VM_CR reads as firmware that
 * disabled and locked SVM shows it (SVMDIS | LOCK, APM 15.30.1), so a guest that probes it learns SVM
 * is unavailable; writing VM_CR or touching VM_HSAVE_PA is #GP, which is what a locked VM_CR and an
 * absent SVM give on hardware. The VMX capability MSRs do not exist on AMD: #GP. So do MSRs outside
 * the MSRPM's ranges (in_msrpm_range).
 */
static void handle_msr(struct exit_ctx *x)
{
    u32 msr = (u32)x->regs->rcx;
    if (x->v->control.exitinfo1 & 1) {
        u64 value = (x->regs->rdx << 32) | (u32)x->regs->rax;
        bool ok;
        if (msr == MSR_EFER)
            ok = write_efer(x, value);
        else if (msr == MSR_X2APIC_ICR)
            ok = (apic_emul_x2apic_icr(x->pc, value), true);
        else if (msr == MSR_APIC_BASE)
            ok = apic_emul_apic_base_write(value);
        else if (msr == MSR_VM_CR || msr == MSR_VM_HSAVE_PA || is_vmx_msr(msr) || !in_msrpm_range(msr))
            ok = false;
        else
            ok = !safe_wrmsr(msr, value);
        if (!ok) {
            inject_gp0(x);
            return;
        }
    } else {
        u64 value = 0;
        if (msr == MSR_EFER) {
            value = x->v->save.efer & ~EFER_SVME;
        } else if (msr == MSR_VM_CR) {
            safe_rdmsr(MSR_VM_CR, &value);          /* absent under some emulators: then 0 */
            value |= VM_CR_SVMDIS | VM_CR_LOCK;
        } else if (msr == MSR_VM_HSAVE_PA || is_vmx_msr(msr) || !in_msrpm_range(msr) || safe_rdmsr(msr, &value)) {
            inject_gp0(x);
            return;
        }
        x->regs->rax = (u32)value;
        x->regs->rdx = value >> 32;
    }
    skip_instruction(x);
}

static void handle_invd(struct exit_ctx *x)
{
    /* INVD would drop dirty lines the hypervisor owns: give it WBINVD semantics instead. */
    __asm__ volatile("wbinvd" ::: "memory");
    skip_instruction(x);
}

static void handle_vmmcall(struct exit_ctx *x)
{
    /* Only the guest kernel may call the hypervisor; at CPL > 0 VMMCALL is #UD (APM Vol. 3 VMMCALL). */
    if (x->v->save.cpl != 0) {
        inject_ud(x);
        return;
    }
    x->regs->rax = hypercall_dispatch(x->pc, x->regs->rax, x->regs->rbx);
    skip_instruction(x);
}

static void handle_virt_insn(struct exit_ctx *x)
{
    inject_ud(x);       /* SVM is not exposed: its instructions are undefined for the guest */
}

static void handle_exception(struct exit_ctx *x)
{
    /* Reflect the intercepted exception; EXITINFO1 holds its error code where it has one (15.12). */
    u32 vector = (u32)(x->code - SVM_EXIT_EXCP_BASE);
    bool has_error = vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21 ||
                     vector == 29 || vector == 30;
    inject_exception(x, vector, has_error, (u32)x->v->control.exitinfo1);
}

static bool cr0_valid(const struct vmcb_save *s, u64 v)
{
    if (v >> 32)
        return false;                                   /* reserved bits 63:32 */
    if ((v & CR0_PG) && !(v & CR0_PE))
        return false;                                   /* PG without PE */
    if ((v & CR0_NW) && !(v & CR0_CD))
        return false;                                   /* NW without CD */
    if (!(v & CR0_PG) && (s->efer & EFER_LMA) && (s->cs.attrib & SEG_ATTR_L))
        return false;                                   /* paging off in 64-bit mode (APM 14.7) */
    return true;
}

/*
 * MOV to CR: the guest owns CR0/CR3/CR4 in the VMCB; the hypervisor only validates (the same rules as
 * vmx/exit.c) and flushes the guest TLB the way the real MOV would.
 */
static void write_cr(struct exit_ctx *x, u32 cr, u64 v)
{
    struct vmcb_save *s = &x->v->save;
    switch (cr) {
    case 0:
        if (!cr0_valid(s, v)) {
            inject_gp0(x);
            return;
        }
        /* Long mode activates/deactivates with paging when LME is set (APM 14.6.1). */
        if ((s->efer & EFER_LME) && (v & CR0_PG))
            s->efer |= EFER_LMA;
        else if (!(v & CR0_PG))
            s->efer &= ~EFER_LMA;
        s->cr0 = v;
        break;
    case 3:
        /* With CR4.PCIDE, bit 63 asks to keep the TLB; the flush below is a superset. */
        if (s->cr4 & CR4_PCIDE)
            v &= ~(1ull << 63);
        if (svm_caps.phys_bits && (v >> svm_caps.phys_bits)) {
            inject_gp0(x);                              /* bits beyond MAXPHYADDR are reserved */
            return;
        }
        s->cr3 = v;
        break;
    case 4:
        /* Reserved bits (CR4.VMXE among them: no VMX on AMD) are #GP; so are PAE off / LA57 flipped in long mode. */
        if ((v & ~svm_caps.cr4_allowed) ||
            ((s->efer & EFER_LMA) && (!(v & CR4_PAE) || ((v ^ s->cr4) & CR4_LA57)))) {
            inject_gp0(x);
            return;
        }
        s->cr4 = v;
        break;
    default:
        dump_state(x, "MOV to an unhandled control register");
        hv_exit(HV_STATUS_FAIL, "svm_unhandled_exit");
    }
    flush_guest_tlb(x);
    skip_instruction(x);
}

/*
 * CRn write (exit codes 0x10 + n). With decode assists EXITINFO1[63] is set and [3:0] names the GPR
 * (APM 15.8.1); without them (QEMU TCG: EXITINFO1 = 0) decode [REX] 0F 22 /r at guest RIP: ModRM.reg
 * (+ REX.R) is the CR, ModRM.rm (+ REX.B) the GPR. CLTS and LMSW also raise CR0-write exits; no guest
 * here uses them, so they stop the run loudly rather than being guessed at.
 */
static void handle_cr_write(struct exit_ctx *x)
{
    u32 cr = (u32)(x->code - SVM_EXIT_CR0_WRITE), gpr;
    u64 info = x->v->control.exitinfo1;
    if (info & (1ull << 63)) {
        gpr = info & 15;
    } else {
        u8 p[4] = { 0 };
        if (!fetch_insn(x, p, sizeof(p))) {
            dump_state(x, "CR write: the instruction at RIP is not readable");
            hv_exit(HV_STATUS_FAIL, "svm_unhandled_exit");
        }
        u8 rex = (p[0] & 0xf0) == 0x40 ? p[0] : 0;
        const u8 *op = p + (rex ? 1 : 0);
        u32 reg = ((op[2] >> 3) & 7) | (rex & 4 ? 8 : 0);
        if (op[0] != 0x0f || op[1] != 0x22 || (op[2] >> 6) != 3 || reg != cr) {
            dump_state(x, "CR write by an instruction other than MOV CRn, reg");
            hv_exit(HV_STATUS_FAIL, "svm_unhandled_exit");
        }
        gpr = (op[2] & 7) | (rex & 1 ? 8 : 0);
    }
    u64 value = read_gpr(x, gpr);
    x->rec->arg0 = cr;
    x->rec->arg1 = value;
    write_cr(x, cr, value);
}

static void handle_xsetbv(struct exit_ctx *x)
{
    u32 index = (u32)x->regs->rcx;
    u64 value = (x->regs->rdx << 32) | (u32)x->regs->rax;
    /* The intercept is checked before the CPL (APM 15.13.2): XSETBV at CPL > 0 is #GP. Otherwise it is
     * executed for real: the CPU itself checks XCR0 validity and #GPs. */
    if (x->v->save.cpl != 0 || safe_xsetbv(index, value)) {
        inject_gp0(x);
        return;
    }
    skip_instruction(x);
}

/* IN / OUT to an intercepted port (APM 15.10.2: EXITINFO1 type, size, port; EXITINFO2 the next RIP). */
static void handle_ioio(struct exit_ctx *x)
{
    u64 info = x->v->control.exitinfo1;
    u16 port = (u16)(info >> 16);
    u32 size = info & (1u << 4) ? 1 : info & (1u << 5) ? 2 : 4;
    if (info & (1u << 2)) {
        dump_state(x, "string I/O to an intercepted port");
        hv_exit(HV_STATUS_FAIL, "svm_string_io");
    }
    if (info & 1) {
        u32 in = guest_io_in(port, size);
        u64 keep = size == 4 ? 0 : x->regs->rax & ~((1ull << (8 * size)) - 1);
        x->regs->rax = keep | in;
    } else {
        guest_io_out(x->pc, port, size, (u32)(x->regs->rax & (size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1)));
    }
    x->rec->insn_len = (u8)(x->v->control.exitinfo2 - x->v->save.rip);
    x->v->save.rip = x->v->control.exitinfo2;
}

static void handle_shutdown(struct exit_ctx *x)
{
    dump_state(x, "guest shutdown (triple fault)");
    hv_exit(HV_STATUS_FAIL, "guest_triple_fault");
}

/* A guest store to the read-only xAPIC page: emulated or written through (apic_emul.c), stepped over. */
static void emulate_apic_store(struct exit_ctx *x, u64 gpa)
{
    struct vmcb *v = x->v;
    struct apic_store_exit e = {
        .paging = { v->save.cr0, v->save.cr3, v->save.cr4, v->save.efer },
        .rip_linear = v->save.cs.base + v->save.rip,
        .long_mode = (v->save.efer & EFER_LMA) && (v->save.cs.attrib & (1u << 9)),   /* CS.L (Table B-2) */
        .gpr = (const u64 *)x->regs,
        .rsp = v->save.rsp,
    };
    u32 len = apic_emul_guest_store(x->pc, &e, gpa, x->rec);
    if (!len) {
        dump_state(x, "undecodable APIC write");
        hv_exit(HV_STATUS_FAIL, "apic_write");
    }
    v->save.rip += len;
    v->control.interrupt_shadow &= ~1ull;
}

static void handle_npf(struct exit_ctx *x)
{
    /* EXITINFO1: #PF-style error code (P, RW, US, RSV, ID; bit 32 final GPA, 33 table walk); EXITINFO2: GPA. */
    u64 err = x->v->control.exitinfo1, gpa = x->v->control.exitinfo2;
    if (guest_gpa_is_hv(gpa)) {
        /* Hypervisor memory is absent from the NPT (guest_isolation.c): never mapped, never written. */
        x->rec->flags |= HV_REC_SECURITY;
        security_event(x->pc->index, "svm", gpa, err & 2 ? "write" : err & 16 ? "fetch" : "read", x->v->save.rip);
        inject_gp0(x);
        return;
    }
    if (apic_emul_is_apic(gpa) && (err & 2)) {
        emulate_apic_store(x, gpa);
        return;
    }
    /* A first touch of a memory-map hole: map that page and let the guest retry (stage2_holes.c). */
    if (stage2_map_hole(&svm_npt, &hv_memmap, gpa)) {
        flush_guest_tlb(x);
        return;
    }
    printk("svm: CPU %u: #NPF at GPA 0x%lx (%s %s%s%s%s) RIP=0x%lx\n", x->pc->index, gpa,
           err & 1 ? "protection" : "not-present", err & 2 ? "write" : "read", err & 16 ? " fetch" : "",
           err & 8 ? " reserved-bit" : "", err & (1ull << 33) ? " guest-table-walk" : "", x->v->save.rip);
    dump_state(x, "#NPF without a handler");
    hv_exit(HV_STATUS_FAIL, "npt_violation");
}

struct exit_entry {
    exit_handler fn;
    u32 kind;
};

static const struct exit_entry exit_table[0x100] = {
    [SVM_EXIT_CR0_WRITE] = { handle_cr_write, HV_EXIT_CR_ACCESS },
    [SVM_EXIT_IOIO] = { handle_ioio, HV_EXIT_IO },
    [SVM_EXIT_CR3_WRITE] = { handle_cr_write, HV_EXIT_CR_ACCESS },
    [SVM_EXIT_CR4_WRITE] = { handle_cr_write, HV_EXIT_CR_ACCESS },
    [SVM_EXIT_EXCP_UD] = { handle_exception, HV_EXIT_EXCEPTION },
    [SVM_EXIT_CPUID] = { handle_cpuid, HV_EXIT_CPUID },
    [SVM_EXIT_INVD] = { handle_invd, HV_EXIT_INVD },
    [SVM_EXIT_MSR] = { handle_msr, HV_EXIT_MSR_READ },      /* MSR_WRITE when EXITINFO1 = 1 */
    [SVM_EXIT_SHUTDOWN] = { handle_shutdown, HV_EXIT_TRIPLE_FAULT },
    [SVM_EXIT_VMRUN] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [SVM_EXIT_VMMCALL] = { handle_vmmcall, HV_EXIT_VMCALL },
    [SVM_EXIT_VMLOAD] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [SVM_EXIT_VMSAVE] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [SVM_EXIT_STGI] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [SVM_EXIT_CLGI] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [SVM_EXIT_SKINIT] = { handle_virt_insn, HV_EXIT_VIRT_INSN },
    [SVM_EXIT_WBINVD] = { handle_invd, HV_EXIT_INVD },
    [SVM_EXIT_XSETBV] = { handle_xsetbv, HV_EXIT_XSETBV },
    /* SVM_EXIT_RDPMC deliberately absent: the unhandled_exit_test=1 hook intercepts it (vmcb.c). */
};

static const struct exit_entry npf_entry = { handle_npf, HV_EXIT_STAGE2_FAULT };

/* VMRUN refused the VMCB (APM 15.5.1): name the broken rule and end the run. */
static __noreturn void vmrun_failed(struct exit_ctx *x)
{
    const char *field = svm_vmcb_invalid_field(x->v);
    printk("svm: CPU %u: VMRUN failed: VMEXIT_INVALID: %s\n", x->pc->index,
           field ? field : "no rule of APM 15.5.1 found broken (see the VMCB below)");
    dump_state(x, "VMRUN failed");
    hv_exit(HV_STATUS_FAIL, "svm_vmrun_failed");
}

/* The operands that make an exit meaningful in a trace (abi.h struct hv_record arg0/arg1/gpa). */
static void record_operands(const struct exit_ctx *x, struct hv_record *r)
{
    const struct guest_regs *g = x->regs;
    switch (x->code) {
    case SVM_EXIT_CPUID:
        r->arg0 = (u32)g->rax;                          /* leaf */
        r->arg1 = (u32)g->rcx;                          /* sub-leaf */
        break;
    case SVM_EXIT_MSR:
    case SVM_EXIT_XSETBV:
        r->arg0 = (u32)g->rcx;                          /* MSR index / XCR number */
        r->arg1 = x->code == SVM_EXIT_MSR && !(x->v->control.exitinfo1 & 1) ? 0 : (g->rdx << 32) | (u32)g->rax;
        break;
    case SVM_EXIT_VMMCALL:
        r->arg0 = g->rax;                               /* hypercall function */
        r->arg1 = g->rbx;                               /* argument */
        break;
    case SVM_EXIT_NPF:
        r->gpa = x->v->control.exitinfo2;
        r->arg0 = x->v->control.exitinfo1;              /* #PF-style error code */
        break;
    case SVM_EXIT_IOIO:
        r->arg0 = x->v->control.exitinfo1 >> 16;        /* port */
        r->arg1 = g->rax;                               /* the value of an OUT */
        break;
    default:
        if (x->code >= SVM_EXIT_EXCP_BASE && x->code < SVM_EXIT_EXCP_BASE + 32) {
            r->arg0 = x->code - SVM_EXIT_EXCP_BASE;     /* vector */
            r->arg1 = x->v->control.exitinfo1;          /* error code */
        }
        break;
    }
}

void svm_exit_dispatch(struct guest_regs *regs)
{
    struct percpu *pc = this_cpu();
    pc->in_root = 1;
    pc->exit_regs = (u64 *)regs;
    struct svm_cpu *s = pc->vendor;
    struct vmcb *v = s->vmcb;
    struct hv_record rec = { 0 };
    /*
     * EXITCODE is 64 bits with VMEXIT_INVALID = -1 (APM Appendix C); QEMU TCG stores its 32-bit code
     * zero-extended (0xffffffff). Sign-extend the negative codes so both read as -1 / -2.
     */
    u64 code = v->control.exitcode;
    if ((code >> 32) == 0 && (u32)code >= 0xfffffff0u)
        code = (u64)(i64)(int)(u32)code;
    struct exit_ctx x = { pc, s, v, regs, code, &rec };
    regs->rax = v->save.rax;            /* handlers see RAX in the frame like every other GPR */
    v->control.tlb_control = SVM_TLB_NOTHING;
    /*
     * An event whose delivery the exit interrupted (EXITINTINFO valid, APM 15.7.2) is injected again;
     * otherwise nothing is pending until a handler injects.
     */
    v->control.event_inj = (v->control.exitintinfo & SVM_EVT_VALID) ? v->control.exitintinfo : 0;

    rec.reason = (u16)x.code;           /* VMEXIT_INVALID (-1) becomes 0xffff */
    rec.qual = v->control.exitinfo1;
    rec.rip = v->save.rip;
    int idx = svm_exit_index(x.code);
    if (idx >= 0)
        s->exits[idx]++;
    if (x.code == SVM_EXIT_INVALID) {
        rec.kind = HV_EXIT_ENTRY_FAILURE;
        vmrun_failed(&x);
    }
    const struct exit_entry *e = x.code < 0x100 ? &exit_table[x.code] : x.code == SVM_EXIT_NPF ? &npf_entry : NULL;
    rec.kind = (u8)(e && e->fn ? e->kind : HV_EXIT_OTHER);
    if (x.code == SVM_EXIT_MSR && (v->control.exitinfo1 & 1))
        rec.kind = HV_EXIT_MSR_WRITE;
    record_operands(&x, &rec);
    if (!e || !e->fn) {
        dump_state(&x, "exit without a handler");
        hv_exit(HV_STATUS_FAIL, "svm_unhandled_exit");
    }
    e->fn(&x);
    if (v->control.event_inj & SVM_EVT_VALID)
        rec.flags |= HV_REC_INJECTED;
    v->save.rax = regs->rax;            /* before the record: a break's snapshot shows the resumed state */
    trace_exit(pc, &rec);
    pc->in_root = 0;
}
