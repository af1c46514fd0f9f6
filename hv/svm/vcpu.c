/*
 * The SVM vcpu accessor (vcpu.h): guest state lives in the VMCB's save area (APM Vol. 2 Appendix B),
 * the GPRs but RSP in the VMRUN loop's frame (RAX is copied there and back by the dispatcher).
 */
#include <hv/abi.h>
#include <hv/apic_emul.h>
#include <hv/console.h>
#include <hv/exit_common.h>
#include <hv/fixup.h>
#include <hv/guest_mem.h>
#include <hv/panic.h>
#include <hv/svm/efer.h>
#include <hv/svm/vcpu.h>
#include <hv/trace.h>
#include <hv/x86.h>


static struct svm_exit *X(struct vcpu *v)
{
    return (struct svm_exit *)v;
}

static struct vmcb_save *S(struct vcpu *v)
{
    return &X(v)->vmcb->save;
}

static u64 get_rsp(struct vcpu *v) { return S(v)->rsp; }
static void set_rsp(struct vcpu *v, u64 x) { S(v)->rsp = x; }
static u64 get_rip(struct vcpu *v) { return S(v)->rip; }
static void set_rip(struct vcpu *v, u64 x) { S(v)->rip = x; }
static u64 get_rflags(struct vcpu *v) { return S(v)->rflags; }
static void set_rflags(struct vcpu *v, u64 x) { S(v)->rflags = x; }

static u32 cpl(struct vcpu *v) { return S(v)->cpl; }

static u32 code_bits(struct vcpu *v)
{
    const struct vmcb_save *s = S(v);
    if ((s->efer & EFER_LMA) && (s->cs.attrib & VMCB_ATTR_L))
        return 64;
    if (!(s->cr0 & X86_CR0_PE) || (s->rflags & X86_RFLAGS_VM))
        return 16;                                      /* real mode, virtual-8086 mode */
    return s->cs.attrib & VMCB_ATTR_DB ? 32 : 16;
}

static u64 seg_base(struct vcpu *v, enum vcpu_seg seg)
{
    const struct vmcb_seg *segs = &S(v)->es;           /* ES, CS, SS, DS, FS, GS in VMCB order */
    return segs[seg].base;
}

static void set_cr2(struct vcpu *v, u64 value) { S(v)->cr2 = value; }

/*
 * The guest's EFER: the VMCB's without SVME (kept 1 underneath, hidden), with LME where it is kept out
 * of the VMCB. While paging is off LME changes nothing until CR0.PG is set (APM Vol. 2 14.6.1), and that
 * MOV CR0 is intercepted (write_cr puts LME back, with LMA). The VMCB never holds LME with paging off
 * because QEMU 7.2's TCG mis-restores the host at #VMEXIT then: it loads the host's CR0 through its MOV
 * CR0 path while the guest's EFER (LME) and CR4 (PAE clear) are still in place, takes that for an illegal
 * long-mode entry and drops the CR0 load. The host then runs on the guest's CR0 (WP clear), and guest
 * stores went through read-only NPT entries: the xAPIC trap (chaos seed 1, one EFER.LME flip, then the
 * guest wrote the real ICR and sent a real INIT that reset the machine).
 */
static u64 guest_efer(struct vcpu *v)
{
    return (S(v)->efer & ~EFER_SVME) | (X(v)->s->lme_off_vmcb ? EFER_LME : 0);
}

static void paging(struct vcpu *v, struct guest_paging *out)
{
    const struct vmcb_save *s = S(v);
    *out = (struct guest_paging){ s->cr0, s->cr3, s->cr4, guest_efer(v) };
}

u32 svm_fetch_insn(struct svm_exit *x, u8 *buf, u32 len)
{
    struct guest_paging p;
    paging(&x->vcpu, &p);
    u64 rip = x->vmcb->save.cs.base + x->vmcb->save.rip;
    if (guest_read_linear(&p, rip, buf, len))
        return len;
    u32 page_left = PAGE_SIZE - (u32)(rip & (PAGE_SIZE - 1));     /* the next page may be unmapped */
    return page_left < len && guest_read_linear(&p, rip, buf, page_left) ? page_left : 0;
}

/*
 * The length decoded from the bytes in place, through this CPU's cached translation of the code page
 * (guest_code_bytes(): checked against the guest's paging entries on every call, so a remapped page
 * or a new CR3 is walked again). 0 when the bytes are not cached or the instruction runs past the
 * page: the caller then copies them through a full walk (svm_fetch_insn).
 */
static inline u32 insn_len_in_place(struct svm_exit *x)
{
    const struct vmcb_save *s = &x->vmcb->save;
    struct guest_paging p = { s->cr0, s->cr3, s->cr4, s->efer };    /* EFER.SVME plays no part in a walk */
    u32 avail;
    const u8 *b = guest_code_bytes(&p, s->cs.base + s->rip, x->vcpu.pc->index, &avail);
    if (!b)
        return 0;
    /* The usual: the opcode the exit implies, no prefix (nothing else to check, APM Vol. 3 1.2). */
    if (avail >= 2 && b[0] == 0x0f &&
        ((x->code == SVM_EXIT_CPUID && b[1] == 0xa2) || (x->code == SVM_EXIT_MSR && (b[1] == 0x32 || b[1] == 0x30))))
        return 2;
    /* 64-bit mode (EFER.LMA and CS.L, APM Vol. 2 Table B-2): only there is 4x a REX prefix. */
    bool long_mode = (s->efer & EFER_LMA) && (s->cs.attrib & VMCB_ATTR_L);
    return svm_insn_len(b, avail, long_mode, x->code);
}

/* The length decoded from a copy of the bytes (out of line: the page is not cached, or the bytes cross it). */
static __attribute__((noinline)) u32 insn_len_copied(struct svm_exit *x)
{
    u8 b[15] = { 0 };
    u32 n = svm_fetch_insn(x, b, sizeof(b));
    u32 len = n ? svm_insn_len(b, n, code_bits(&x->vcpu) == 64, x->code) : 0;
    if (!len)
        printk("svm: CPU %u: cannot decode the length of the exiting instruction: %02x %02x %02x %02x\n",
               x->vcpu.pc->index, b[0], b[1], b[2], b[3]);
    return len;
}

/*
 * The exiting instruction's length: next_rip where the CPU saves it (NRIPS, APM 15.7.1), EXITINFO2 for
 * IOIO (15.10.2), else decoded at guest RIP and checked against the instruction the exit code implies.
 */
static u32 insn_len(struct vcpu *v)
{
    struct svm_exit *x = X(v);
    const struct vmcb *vm = x->vmcb;
    if (x->code == SVM_EXIT_IOIO)
        return (u32)(vm->control.exitinfo2 - vm->save.rip);
    if (x->s->nrips && vm->control.next_rip)
        return (u32)(vm->control.next_rip - vm->save.rip);
    u32 len = insn_len_in_place(x);
    return len ? len : insn_len_copied(x);
}

/* Past the instruction; the STI / MOV-SS shadow ends with it (15.21.5). */
static u64 advance(struct vcpu *v, u32 len)
{
    S(v)->rip += len;
    X(v)->vmcb->control.interrupt_shadow &= ~1ull;
    v->rec->insn_len = (u8)len;
    return S(v)->rflags;
}

/* EVENTINJ (APM 15.20): delivered through the guest IDT by the next VMRUN. */
static void inject(struct vcpu *v, const struct vcpu_event *e)
{
    u64 type = e->type == VCPU_EVT_EXTINT ? SVM_EVT_TYPE_INTR
               : e->type == VCPU_EVT_NMI  ? SVM_EVT_TYPE_NMI
               : e->type == VCPU_EVT_SW_INT ? SVM_EVT_TYPE_SOFT
                                            : SVM_EVT_TYPE_EXCEPT;
    u64 ev = SVM_EVT_VALID | type | e->vector;
    if (e->has_error)
        ev |= SVM_EVT_ERROR_VALID | ((u64)e->error << 32);
    X(v)->vmcb->control.event_inj = ev;
}

/* TF after an emulated instruction: the single-step #DB trap, DR6.BS set (APM Vol. 2 13.1.1.6). */
static void single_step(struct vcpu *v)
{
    S(v)->dr6 |= X86_DR6_BS;
    vcpu_inject_exception(v, VEC_DB, false, 0);
}

static void flush_guest_tlb(struct vcpu *v)
{
    /* TLB_CONTROL (APM 15.16.1): this ASID only where the CPU can; QEMU TCG implements only "all". */
    X(v)->vmcb->control.tlb_control = svm_caps.flush_by_asid ? SVM_TLB_FLUSH_GUEST : SVM_TLB_FLUSH_ALL;
}

/*
 * MOV to CR: the guest owns CR0/CR3/CR4 in the VMCB; core checked the architectural rules, this adds
 * the CR4 bits this CPU supports (CR4.VMXE among the reserved: no VMX on AMD) and flushes the guest TLB
 * as the real MOV would. With nested paging the PDPTEs are not cached (APM 15.25.10).
 */
static bool write_cr(struct vcpu *v, u32 cr, u64 value)
{
    struct vmcb_save *s = S(v);
    switch (cr) {
    case 0: {
        /* Long mode activates/deactivates with paging when LME is set (APM 14.6.1); LME is in the VMCB
         * only with paging on (guest_efer). */
        bool lme = (guest_efer(v) & EFER_LME) != 0;
        s->efer &= ~(EFER_LME | EFER_LMA);
        if (lme && (value & X86_CR0_PG))
            s->efer |= EFER_LME | EFER_LMA;
        X(v)->s->lme_off_vmcb = lme && !(value & X86_CR0_PG);
        s->cr0 = value;
        break;
    }
    case 3:
        s->cr3 = value & ~(1ull << 63);                 /* the PCIDE no-flush hint: the flush is a superset */
        break;
    case 4:
        if (value & ~svm_caps.cr4_allowed)
            return false;
        s->cr4 = value;
        break;
    default:
        return false;
    }
    flush_guest_tlb(v);
    return true;
}

/*
 * The EFER bits this CPU implements: those CPUID names (svm_efer_cpuid_bits, svm/efer.c) that also
 * stick when written (an emulator may name a bit and drop it: QEMU's TCG ignores LMSLE, and its
 * VMRUN then refuses a guest EFER with it, APM 15.5.1). Probed once in host context under a fault
 * fixup, each bit set alone and the host's EFER restored.
 */
static u64 efer_supported(void)
{
    static u64 bits;
    if (bits)
        return bits;
    u32 max, a, b, c, d, e1c = 0, e1d = 0, e8b = 0, e21a = 0;
    cpuid(0x80000000, 0, &max, &b, &c, &d);
    if (max >= 0x80000001)
        cpuid(0x80000001, 0, &a, &b, &e1c, &e1d);
    if (max >= 0x80000008)
        cpuid(0x80000008, 0, &a, &e8b, &c, &d);
    if (max >= 0x80000021)
        cpuid(0x80000021, 0, &e21a, &b, &c, &d);
    u64 named = svm_efer_cpuid_bits(e1c, e1d, e8b, e21a), host = rdmsr(MSR_EFER), m = EFER_LMA;
    for (u32 i = 0; i < 64; i++) {
        u64 bit = 1ull << i, got = 0;
        if (!(named & bit) || bit == EFER_LMA)
            continue;
        if ((host & bit) || (!safe_wrmsr(MSR_EFER, host | bit) && !safe_rdmsr(MSR_EFER, &got) && (got & bit)))
            m |= bit;
        wrmsr(MSR_EFER, host);
    }
    bits = m;
    return bits;
}

/* EFER as the guest may write it: SVME is hidden (kept 1 underneath), LMA is read-only (APM 3.1.7). */
static bool write_efer(struct vcpu *v, u64 value)
{
    struct vmcb_save *s = S(v);
    if (value & ~efer_supported())
        return false;                               /* reserved on this CPU, or SVME (SVM hidden) */
    if (((value ^ guest_efer(v)) & EFER_LME) && (s->cr0 & X86_CR0_PG))
        return false;                               /* LME changes only with paging off */
    bool off_vmcb = (value & EFER_LME) && !(s->cr0 & X86_CR0_PG);
    X(v)->s->lme_off_vmcb = off_vmcb;
    s->efer = (value & ~(EFER_LMA | (off_vmcb ? EFER_LME : 0))) | (s->efer & EFER_LMA) | EFER_SVME;
    return true;
}

/*
 * The MSRs the policy table (core/guest/msr_policy.c) leaves to this back end: EFER (SVME hidden) and VM_CR,
 * which reads as firmware that disabled and locked SVM shows it (SVMDIS | LOCK, APM 15.30.1), so a
 * guest that probes it learns SVM is unavailable; writing it is #GP, as a locked VM_CR gives.
 * Anything else (PASS) is #GP in core.
 */
static int msr(struct vcpu *v, u32 index, bool write, u64 *value)
{
    if (index == MSR_EFER) {
        if (write)
            return write_efer(v, *value) ? VCPU_MSR_DONE : VCPU_MSR_GP;
        *value = guest_efer(v);
        return VCPU_MSR_DONE;
    }
    if (index == MSR_VM_CR && !write) {
        if (safe_rdmsr(MSR_VM_CR, value))           /* absent under some emulators: then 0 */
            *value = 0;
        *value |= VM_CR_SVMDIS | VM_CR_LOCK;
        return VCPU_MSR_DONE;
    }
    return index == MSR_VM_CR ? VCPU_MSR_GP : VCPU_MSR_PASS;
}

/* RDTSC, RDTSCP and RDMSR of the TSC in the guest add TSC_OFFSET (APM Vol. 2 15.30.5). */
static bool set_tsc_offset(struct vcpu *v, u64 offset)
{
    X(v)->vmcb->control.tsc_offset = offset;
    return true;
}

/* EVENTINJ of an NMI needs no interrupt shadow; the CPU itself holds NMIs while the guest's handler runs. */
static bool nmi_allowed(struct vcpu *v)
{
    return !(X(v)->vmcb->control.interrupt_shadow & 1);
}

/*
 * One instruction, then #VMEXIT: RFLAGS.TF with the #DB intercept (APM Vol. 2 13.1.1.6, 15.12); the
 * interrupt shadow keeps an interrupt from being taken before it. The guest's own TF is kept.
 */
static bool step_arm(struct vcpu *v, bool on)
{
    struct svm_exit *x = X(v);
    struct vmcb *vm = x->vmcb;
    if (on) {
        /*
         * Every exception is intercepted meanwhile (#MC and vector 2 aside): a faulting instruction
         * clears TF into the guest's handler (APM Vol. 2 8.2, 13.1.1.6), which must not run with the
         * page redirected (apic_step.h apic_step_cut).
         */
        x->s->step_guest_tf = (vm->save.rflags & X86_RFLAGS_TF) != 0;
        x->s->step_exc_saved = vm->control.intercept_exceptions;
        vm->save.rflags |= X86_RFLAGS_TF;
        vm->control.intercept_exceptions = ~((1u << VEC_NMI) | (1u << VEC_MC));
        vm->control.interrupt_shadow |= 1;
    } else {
        vm->save.rflags = (vm->save.rflags & ~X86_RFLAGS_TF) | (x->s->step_guest_tf ? X86_RFLAGS_TF : 0);
        vm->control.intercept_exceptions = x->s->step_exc_saved;
    }
    return true;
}

static void dump(struct vcpu *v, const char *why)
{
    struct svm_exit *x = X(v);
    /* For post-mortem tools, before anything else can fail: the fatal exit's record and the VMCB. */
    trace_exit_unresumed(v->pc, v->rec);
    svm_snapshot(v->pc, HV_SNAP_FATAL);
    printk("svm: CPU %u: %s: exit code 0x%lx (%s) exitinfo1=0x%lx exitinfo2=0x%lx\n", v->pc->index, why, x->code,
           svm_exit_name(x->code), x->vmcb->control.exitinfo1, x->vmcb->control.exitinfo2);
    svm_dump_vmcb(x->vmcb);
    exit_print_gprs(v);
}

const struct vcpu_ops svm_vcpu_ops = {
    VCPU_OPS_ACCESSORS,
    .stage2_flush = flush_guest_tlb,
};
