/*
 * The #VMEXIT dispatcher (the AMD mirror of vmx/exit.c). A designated-initializer table keyed by exit
 * code for the dense range 0x00-0xFF (AMD APM Vol. 2 Appendix C); #NPF (0x400) and VMEXIT_INVALID
 * (-1) are checked separately. The handlers both back ends share live in core (exit_common.h); this
 * file decodes SVM's exit information into them. Every exit is counted through core's trace API. A
 * code without a handler is never resumed blindly: an instruction's is refused with #UD, an exception
 * reflected (unhandled()), any other dumps the VMCB and stops the run.
 */
#include <hv/abi.h>
#include <hv/apic_step.h>
#include <hv/console.h>
#include <hv/exit_common.h>
#include <hv/exit_fast.h>
#include <hv/gdbstub.h>
#include <hv/guest_mem.h>
#include <hv/panic.h>
#include <hv/svm/halt.h>
#include <hv/svm/vcpu.h>
#include <hv/trace.h>
#include <hv/x86.h>

typedef void (*exit_handler)(struct svm_exit *);

static void cpuid_full(struct svm_exit *x) { exit_cpuid(&x->vcpu); }
static void invd(struct svm_exit *x) { exit_invd(&x->vcpu); }
static void vmmcall(struct svm_exit *x) { exit_hypercall(&x->vcpu); }
static void xsetbv(struct svm_exit *x) { exit_xsetbv(&x->vcpu); }
/* SVM instructions: SVM is not exposed (CPUID 8000_0001h:ECX.SVM reads 0), so they are #UD. */
static void undefined(struct svm_exit *x) { exit_undefined(&x->vcpu); }

/* RDMSR / WRMSR: EXITINFO1 0 = read, 1 = write (APM 15.11). */
static void msr(struct svm_exit *x)
{
    if (x->vmcb->control.exitinfo1 & 1)
        exit_msr_write(&x->vcpu);
    else
        exit_msr_read(&x->vcpu);
}

static void exception(struct svm_exit *x)
{
    /* Reflect the intercepted exception; EXITINFO1 holds its error code where it has one (15.12). */
    u32 vector = (u32)(x->code - SVM_EXIT_EXCP_BASE);
    bool has_error = vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21 ||
                     vector == 29 || vector == 30;
    if (vector == VEC_PF)
        x->vcpu.ops->set_cr2(&x->vcpu, x->vmcb->control.exitinfo2);    /* the #PF intercept leaves CR2 (15.12) */
    vcpu_inject_exception(&x->vcpu, vector, has_error, (u32)x->vmcb->control.exitinfo1);
}

/*
 * #DB, intercepted only while an undecodable APIC store is single-stepped (apic_step.h): the step is
 * done; if the guest had TF set itself, the trap is its own and is delivered (DR6.BS).
 */
static void debug_trap(struct svm_exit *x)
{
    bool step = apic_step_active(x->vcpu.pc);
    if (step && !apic_step_trap(&x->vcpu))
        return;                         /* the trap came before the instruction ran: stepped again */
    if (!step || x->s->step_guest_tf)
        exception(x);
}

/*
 * CRn write (exit codes 0x10 + n). With decode assists EXITINFO1[63] is set and [3:0] names the GPR
 * (APM 15.8.1); without them (QEMU TCG: EXITINFO1 = 0) the instruction at guest RIP is decoded:
 * MOV CRn, reg ([REX] 0F 22 /r: ModRM.reg + REX.R is the CR, ModRM.rm + REX.B the GPR), and for CR0
 * also CLTS (0F 06) and LMSW r16 (0F 01 /6), which raise the same intercept.
 */
static void cr_write(struct svm_exit *x)
{
    struct vcpu *v = &x->vcpu;
    u32 cr = (u32)(x->code - SVM_EXIT_CR0_WRITE);
    u64 info = x->vmcb->control.exitinfo1;
    if (info & (1ull << 63)) {
        exit_cr_write(v, cr, vcpu_gpr(v, info & 15));
        return;
    }
    u8 b[15] = { 0 }, rex;
    u32 n = svm_fetch_insn(x, b, sizeof(b));
    u32 at = svm_insn_prefixes(b, n, v->ops->code_bits(v) == 64, &rex);
    const u8 *op = b + at;
    if (n >= at + 2 && op[0] == 0x0f && op[1] == 0x06 && cr == 0) {
        exit_cr_write(v, 0, x->vmcb->save.cr0 & ~(1ull << 3));                  /* CLTS clears TS */
        return;
    }
    if (n >= at + 3 && op[0] == 0x0f && op[1] == 0x01 && (op[2] >> 6) == 3 && ((op[2] >> 3) & 7) == 6 && cr == 0) {
        /* LMSW: only PE, MP, EM, TS; it cannot clear PE (SDM Vol. 2A LMSW) */
        u64 src = vcpu_gpr(v, (op[2] & 7) | (rex & 1 ? 8 : 0)) & 0xf, old = x->vmcb->save.cr0;
        exit_cr_write(v, 0, (old & ~0xeull) | src | (old & 1));
        return;
    }
    u32 reg = n >= at + 3 ? ((op[2] >> 3) & 7) | (rex & 4 ? 8 : 0) : ~0u;
    if (n < at + 3 || op[0] != 0x0f || op[1] != 0x22 || reg != cr) {
        /*
         * The bytes at RIP are no CR write: the guest changed its code since the CPU executed it (or the
         * code is not in guest RAM the hypervisor may read). Neither may stop the run. Bytes that changed
         * are executed again (the CPU intercepts them again if they write a CR); bytes that cannot be
         * read are refused with #UD.
         */
        static u32 reports;
        bool unreadable = n < at + 3;
        if (__atomic_fetch_add(&reports, 1, __ATOMIC_RELAXED) < 8)
            printk("svm: CPU %u: CR%u write at RIP 0x%lx by bytes that are no CR write (%u fetched): %s\n",
                   v->pc->index, cr, x->vmcb->save.rip, n, unreadable ? "#UD reflected" : "executed again");
        if (unreadable)
            vcpu_inject_ud(v);
        return;
    }
    u64 value = vcpu_gpr(v, (op[2] & 7) | (rex & 1 ? 8 : 0));
    v->rec->arg0 = cr;
    v->rec->arg1 = value;
    exit_cr_write(v, cr, value);
}

/*
 * INS / OUTS: the address size and OUTS's segment from the instruction's own prefixes (67, segment
 * overrides; AMD APM Vol. 3 1.2), since EXITINFO1 carries the segment only with decode assists and
 * QEMU TCG's address-size bits are not reliable.
 */
static void string_io_operands(struct svm_exit *x, struct io_access *a)
{
    static const u8 seg_prefix[6] = { 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65 };    /* ES CS SS DS FS GS */
    u8 b[15] = { 0 };
    u32 n = svm_fetch_insn(x, b, sizeof(b)), bits = x->vcpu.ops->code_bits(&x->vcpu);
    bool a67 = false;
    a->seg = VCPU_DS;
    for (u32 i = 0; i < n; i++) {
        u32 s = 0;
        while (s < 6 && seg_prefix[s] != b[i])
            s++;
        if (s < 6)
            a->seg = (u8)s;
        else if (b[i] == 0x67)
            a67 = true;
        else if (b[i] != 0x66 && b[i] != 0xf0 && b[i] != 0xf2 && b[i] != 0xf3)
            break;
    }
    a->addr_bits = (u8)(!a67 ? bits : bits == 16 ? 32 : bits == 32 ? 16 : 32);
}

/* IN / OUT to an intercepted port (APM 15.10.2: EXITINFO1 type, size, port; EXITINFO2 the next RIP). */
static void ioio(struct svm_exit *x)
{
    u64 info = x->vmcb->control.exitinfo1;
    struct io_access a = {
        .port = (u16)(info >> 16),
        .size = info & (1u << 4) ? 1 : info & (1u << 5) ? 2 : 4,
        .in = info & 1,
        .string = (info >> 2) & 1,
        .rep = (info >> 3) & 1,
    };
    if (a.string)
        string_io_operands(x, &a);
    exit_io(&x->vcpu, &a);
}

/*
 * NMI intercept (APM 15.13.2): the NMI is not taken, it stays pending. Opening GIF for a moment lets the
 * host take it through its own IDT (exception.c: the guest's NMI is held, a kick consumed); then
 * vcpu_exit_done() injects it. The host runs with RFLAGS.IF = 0, so no interrupt comes in with it.
 */
static void nmi(struct svm_exit *x)
{
    (void)x;
    __asm__ volatile("stgi; nop; clgi" ::: "memory");
}

/*
 * SMI intercept (APM Vol. 2 15.13.3): the SMI stays pending, and the firmware's SMM handler takes it
 * in host mode the moment GIF opens, then RSM returns here. Without the intercept it would run in
 * guest mode, under the guest's intercepts: an exit taken inside the handler saves SMM state (real
 * mode at SMBASE) into the VMCB, which VMRUN then refuses. A guest raises SMIs at will (a write to
 * the FADT's SMI_CMD port, the chipset's SMI timers).
 */
static void smi(struct svm_exit *x)
{
    (void)x;
    __asm__ volatile("stgi; nop; clgi" ::: "memory");
}

/*
 * INTR, intercepted while the guest runs its HLT, and with the gdb stub on always (halt.c): the
 * interrupt stays pending (APM Vol. 2 15.13.1) and the guest takes it at VMRUN, INTR let through (a
 * halted guest's by svm_halt_after_exit()).
 */
static void intr(struct svm_exit *x)
{
    if (!x->vcpu.pc->guest_halted)
        svm_intr_let_through(x->vmcb);
}

static void shutdown(struct svm_exit *x)
{
    x->vcpu.ops->dump(&x->vcpu, "guest shutdown (triple fault)");
    hv_exit(HV_STATUS_FAIL, "guest_triple_fault");
}

/* #NPF: EXITINFO1 is a #PF-style error code (P, RW, US, RSV, ID; APM 15.25.6), EXITINFO2 the GPA. */
static void npf(struct svm_exit *x)
{
    u64 err = x->vmcb->control.exitinfo1;
    u32 access = err & 2 ? S2_WRITE : err & 16 ? S2_FETCH : S2_READ;
    exit_stage2_fault(&x->vcpu, x->vmcb->control.exitinfo2, access);
}

struct exit_entry {
    exit_handler fn;
    u32 kind;
};

static const struct exit_entry exit_table[0x100] = {
    [SVM_EXIT_CR0_WRITE] = { cr_write, HV_EXIT_CR_ACCESS },
    [SVM_EXIT_IOIO] = { ioio, HV_EXIT_IO },
    [SVM_EXIT_CR3_WRITE] = { cr_write, HV_EXIT_CR_ACCESS },
    [SVM_EXIT_CR4_WRITE] = { cr_write, HV_EXIT_CR_ACCESS },
    [SVM_EXIT_EXCP_DB] = { debug_trap, HV_EXIT_EXCEPTION },
    [SVM_EXIT_EXCP_UD] = { exception, HV_EXIT_EXCEPTION },
    [SVM_EXIT_NMI] = { nmi, HV_EXIT_EXCEPTION },
    [SVM_EXIT_INTR] = { intr, HV_EXIT_OTHER },
    [SVM_EXIT_SMI] = { smi, HV_EXIT_OTHER },
    [SVM_EXIT_HLT] = { svm_halt_exit, HV_EXIT_HLT },
    [SVM_EXIT_CPUID] = { cpuid_full, HV_EXIT_CPUID },
    [SVM_EXIT_IRET] = { svm_intr_iret_exit, HV_EXIT_OTHER },
    [SVM_EXIT_INVD] = { invd, HV_EXIT_INVD },
    [SVM_EXIT_MSR] = { msr, HV_EXIT_MSR_READ },         /* MSR_WRITE when EXITINFO1 = 1 */
    [SVM_EXIT_SHUTDOWN] = { shutdown, HV_EXIT_TRIPLE_FAULT },
    [SVM_EXIT_VMRUN] = { undefined, HV_EXIT_VIRT_INSN },
    [SVM_EXIT_VMMCALL] = { vmmcall, HV_EXIT_VMCALL },
    [SVM_EXIT_VMLOAD] = { undefined, HV_EXIT_VIRT_INSN },
    [SVM_EXIT_VMSAVE] = { undefined, HV_EXIT_VIRT_INSN },
    [SVM_EXIT_STGI] = { undefined, HV_EXIT_VIRT_INSN },
    [SVM_EXIT_CLGI] = { undefined, HV_EXIT_VIRT_INSN },
    [SVM_EXIT_SKINIT] = { undefined, HV_EXIT_VIRT_INSN },
    [SVM_EXIT_WBINVD] = { invd, HV_EXIT_INVD },
    [SVM_EXIT_XSETBV] = { xsetbv, HV_EXIT_XSETBV },
    /* SVM_EXIT_RDPMC deliberately absent: the unhandled_exit_test=1 hook intercepts it (vmcb.c). */
};

static const struct exit_entry npf_entry = { npf, HV_EXIT_STAGE2_FAULT };
/* Every other exception vector: intercepted only while an xAPIC step is armed (svm/vcpu.c step_arm). */
static const struct exit_entry excp_entry = { exception, HV_EXIT_EXCEPTION };

/*
 * Exit codes an instruction causes before it completes (APM Vol. 2 Appendix C): CR / DR reads and
 * writes (0x00-0x3F), the instruction intercepts 0x65-0x7C and 0x80-0x8E (not INTR .. VINTR,
 * TASK_SWITCH, FERR_FREEZE, SHUTDOWN), INVLPGB .. TLBSYNC (0xA0-0xA4). The write traps 0x8F-0x9F come
 * after the instruction completed: #UD would be wrong there, they stay fatal (never enabled).
 */
static bool code_is_instruction(u64 code)
{
    return code < 0x40 || (code >= 0x65 && code <= 0x7c) || (code >= 0x80 && code <= 0x8e) ||
           (code >= 0xa0 && code <= 0xa4);
}

/*
 * An exit without a handler. An exception intercept is reflected (the exception the guest raised); an
 * instruction the guest can execute at will is refused as one the CPU does not offer (#UD) and
 * reported: the run goes on. Any other code means an intercept nobody handles (a hypervisor bug): dump
 * and stop.
 */
static void unhandled(struct svm_exit *x)
{
    static u32 reports;
    bool excp = x->code >= SVM_EXIT_EXCP_BASE && x->code < SVM_EXIT_EXCP_BASE + 32;
    if (!excp && !code_is_instruction(x->code)) {
        x->vcpu.ops->dump(&x->vcpu, "exit without a handler");
        hv_exit(HV_STATUS_FAIL, "svm_unhandled_exit");
    }
    if (__atomic_fetch_add(&reports, 1, __ATOMIC_RELAXED) < 8)
        printk("svm: CPU %u: exit without a handler: exit code 0x%lx (%s) at RIP 0x%lx: %s reflected\n",
               x->vcpu.pc->index, x->code, svm_exit_name(x->code), x->vmcb->save.rip, excp ? "the exception" : "#UD");
    if (excp)
        exception(x);
    else
        vcpu_inject_ud(&x->vcpu);
}

/* VMRUN refused the VMCB (APM 15.5.1): name the broken rule and end the run. */
static __noreturn void vmrun_failed(struct svm_exit *x)
{
    const char *field = svm_vmcb_invalid_field(x->vmcb);
    printk("svm: CPU %u: VMRUN failed: VMEXIT_INVALID: %s\n", x->vcpu.pc->index,
           field ? field : "no rule of APM 15.5.1 found broken (see the VMCB below)");
    x->vcpu.ops->dump(&x->vcpu, "VMRUN failed");
    hv_exit(HV_STATUS_FAIL, "svm_vmrun_failed");
}

/* The operands that SVM's exit information holds (the GPR ones are core's, exit_common.h). */
static void record_operands(struct svm_exit *x, u32 kind)
{
    struct hv_record *r = x->vcpu.rec;
    exit_record_gpr_operands(&x->vcpu, kind);
    switch (x->code) {
    case SVM_EXIT_NPF:
        r->gpa = x->vmcb->control.exitinfo2;
        r->arg0 = x->vmcb->control.exitinfo1;           /* #PF-style error code */
        break;
    case SVM_EXIT_IOIO:
        r->arg0 = x->vmcb->control.exitinfo1 >> 16;     /* port */
        r->arg1 = x->vcpu.gpr[0];                       /* RAX: the value of an OUT */
        break;
    case SVM_EXIT_NMI:
        r->arg0 = 2;                                    /* vector */
        break;
    default:
        if (x->code >= SVM_EXIT_EXCP_BASE && x->code < SVM_EXIT_EXCP_BASE + 32) {
            r->arg0 = x->code - SVM_EXIT_EXCP_BASE;     /* vector */
            r->arg1 = x->vmcb->control.exitinfo1;       /* error code */
        }
        break;
    }
}

/*
 * An event whose delivery the exit interrupted (EXITINTINFO, APM 15.7.2) is delivered again on entry.
 * Not a software interrupt (INT n) nor INT3 / INTO: injected as such they would push the RIP of the
 * instruction itself (without NRIPS there is no next RIP to give). RIP still points at it, so the
 * guest simply executes it again, which raises the same event (as KVM does).
 */
static void note_interrupted_event(struct svm_exit *x)
{
    u64 info = x->vmcb->control.exitintinfo;
    u32 type = (u32)(info >> 8) & 7, vector = (u8)info;
    if (!(info & SVM_EVT_VALID) || type == 4 || (type == 3 && (vector == 3 || vector == 4)))
        return;
    x->vcpu.event = (struct vcpu_event){
        .valid = true,
        .has_error = (info & SVM_EVT_ERROR_VALID) != 0,
        .type = (u8)type,                               /* 0, 2, 3: the same numbers as VCPU_EVT_* */
        .vector = (u8)vector,
        .error = (u32)(info >> 32),
    };
}

/* Every exit the fast path (exit_fast.c) does not take: decoded, handled through exit_table, finished in core. */
void svm_exit_full(struct percpu *pc, struct svm_cpu *s, struct guest_regs *regs)
{
    gdbstub_dr_exit_begin(pc);          /* the gdb stub's hardware breakpoints, when it has some */
    struct vmcb *v = s->vmcb;
    /*
     * EXITCODE is 64 bits with VMEXIT_INVALID = -1 (APM Appendix C); QEMU TCG stores its 32-bit code
     * zero-extended (0xffffffff). Sign-extend the negative codes so both read as -1 / -2.
     */
    u64 code = v->control.exitcode;
    if ((code >> 32) == 0 && (u32)code >= 0xfffffff0u)
        code = (u64)(i64)(int)(u32)code;
    /* the reason 0xffff for VMEXIT_INVALID (-1) */
    struct hv_record *rec = trace_exit_begin(pc, v->save.cr3, (u16)code, v->control.exitinfo1, v->save.rip);
    struct svm_exit x = { { &svm_vcpu_ops, pc, (u64 *)regs, rec, "svm", { 0 } }, s, v, code };
    regs->rax = v->save.rax;            /* handlers see RAX in the frame like every other GPR */
    v->control.tlb_control = SVM_TLB_NOTHING;
    v->control.event_inj = 0;

    int idx = x.code < 0x100 ? (int)x.code : svm_exit_index(x.code);     /* the dense codes are their index */
    if (idx >= 0)
        s->exits[idx]++;
    if (x.code == SVM_EXIT_INVALID) {
        rec->kind = HV_EXIT_ENTRY_FAILURE;
        vmrun_failed(&x);
    }
    const struct exit_entry *e = x.code < 0x100 ? &exit_table[x.code] : x.code == SVM_EXIT_NPF ? &npf_entry : NULL;
    if (e && !e->fn && x.code >= SVM_EXIT_EXCP_BASE && x.code < SVM_EXIT_EXCP_BASE + 32)
        e = &excp_entry;
    rec->kind = (u8)(e && e->fn ? e->kind : HV_EXIT_OTHER);
    if (x.code == SVM_EXIT_MSR && (v->control.exitinfo1 & 1))
        rec->kind = HV_EXIT_MSR_WRITE;
    if (x.code != SVM_EXIT_EXCP_BASE + VEC_DB)
        apic_step_cut(&x.vcpu);
    record_operands(&x, rec->kind);
    note_interrupted_event(&x);
    if (e && e->fn)
        e->fn(&x);
    else
        unhandled(&x);
    v->save.rax = regs->rax;            /* before the record: a break's snapshot shows the resumed state */
    vcpu_exit_finish(&x.vcpu, rec);
    svm_halt_check(pc, &x);            /* after the event is known: a halted guest stays halted or wakes */
}
