/*
 * doVmxExitHandler (docs/walkthrough.md step 12): the exit dispatcher. A table indexed by basic exit reason (ACRN style), with the
 * VM-entry-failure bit checked first (SDM Vol. 3C 27.8). The handlers both back ends share live in
 * core (exit_common.h); this file decodes VT-x's exit information into them and keeps what only VT-x
 * has. Every exit is counted through core's trace API. A reason without a handler is never resumed
 * blindly: an instruction's is refused with #UD (unhandled()), any other dumps state and stops the run.
 */
#include <hv/abi.h>
#include <hv/apic_emul.h>
#include <hv/apic_step.h>
#include <hv/console.h>
#include <hv/exit_common.h>
#include <hv/exit_fast.h>
#include <hv/gdbstub.h>
#include <hv/panic.h>
#include <hv/trace.h>
#include <hv/vmx/halt.h>
#include <hv/vmx/task_switch.h>
#include <hv/vmx/vcpu.h>
#include <hv/vmx/vmcs.h>
#include <hv/vmx/vmx.h>
#include <hv/x86.h>

#define INTERRUPTIBILITY_NMI_BLOCKING (1ull << 3)

typedef void (*exit_handler)(struct vmx_exit *);

static void cpuid_full(struct vmx_exit *x) { exit_cpuid(&x->vcpu); }
static void msr_read(struct vmx_exit *x) { exit_msr_read(&x->vcpu); }
static void msr_write(struct vmx_exit *x) { exit_msr_write(&x->vcpu); }
static void invd(struct vmx_exit *x) { exit_invd(&x->vcpu); }
static void vmcall(struct vmx_exit *x) { exit_hypercall(&x->vcpu); }
static void xsetbv(struct vmx_exit *x) { exit_xsetbv(&x->vcpu); }
/* VMX instructions (VMX hidden) and GETSEC (SMX not offered: CPUID.1:ECX.SMX reads 0): #UD. */
static void undefined(struct vmx_exit *x) { exit_undefined(&x->vcpu); }

/*
 * An IRET that unblocked NMIs and then faulted (exit-information bit 12, SDM Vol. 3C 28.2.3): NMIs
 * must be blocked again before the guest re-executes it (30.7.1.2), unless an event is re-injected.
 */
static void reblock_nmi_after_iret(struct vmx_exit *x, bool unblocked)
{
    if (unblocked && !x->vcpu.event.valid)
        vmwrite(GUEST_INTERRUPTIBILITY_INFO, vmread(GUEST_INTERRUPTIBILITY_INFO) | INTERRUPTIBILITY_NMI_BLOCKING);
}

/*
 * An NMI that causes a VM exit blocks further NMIs as its delivery would, until the next IRET (SDM
 * Vol. 3A 6.7.1), and VMRESUME is no IRET: Bochs 2.7 then held the next NMI (a kick, the guest's next
 * NMI) for good. One IRET to the next instruction unblocks them.
 */
static void unblock_nmis(void)
{
    __asm__ volatile("movq %%rsp, %%rax\n\t"
                     "movl %%ss, %%ecx\n\t"
                     "pushq %%rcx\n\t"
                     "pushq %%rax\n\t"
                     "pushfq\n\t"
                     "movl %%cs, %%ecx\n\t"
                     "pushq %%rcx\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "iretq\n"
                     "1:"
                     : : : "rax", "rcx", "memory", "cc");
}

static void exception(struct vmx_exit *x)
{
    u32 info = (u32)vmread(VM_EXIT_INTR_INFO);
    u32 vector = info & 0xff, type = (info >> 8) & 7;
    reblock_nmi_after_iret(x, info & INTR_INFO_NMI_UNBLOCKED);
    if (type == VCPU_EVT_NMI) {         /* NMI exiting: the guest's NMI, or the hypervisor's kick (27.2.2) */
        vcpu_nmi_arrived(x->vcpu.pc);
        unblock_nmis();
        return;
    }
    /* The single step of an undecodable APIC store, where there is no monitor trap flag (apic_step.h). */
    if (vector == VEC_DB && apic_step_active(x->vcpu.pc)) {
        bool guest_tf = x->v->step_guest_tf;
        if (!apic_step_trap(&x->vcpu) || !guest_tf)
            return;                     /* ours; or it came before the instruction ran: stepped again */
    }
    /* Any other exception while a step is armed (all are intercepted then): the step ends first. */
    apic_step_cut(&x->vcpu);
    if (vector == VEC_PF && type == VCPU_EVT_HW_EXCEPTION)
        x->vcpu.ops->set_cr2(&x->vcpu, x->qual);   /* a #PF exit leaves CR2: the address is the qualification (28.2.1) */
    if (type == VCPU_EVT_SW_EXC || type == VCPU_EVT_PRIV_SW_EXC) {
        /*
         * INT3 / INTO (type 6) or INT1 (type 5) of an intercepted vector: delivered again as the same
         * event type with the instruction's length, so the guest's handler sees the return address after
         * it (SDM Vol. 3C 27.6.1.1 event injection, 28.2.5 VM-exit instruction length).
         */
        x->vcpu.event = (struct vcpu_event){
            .valid = true, .type = (u8)type, .vector = (u8)vector, .insn_len = (u32)vmread(VM_EXIT_INSTRUCTION_LEN),
        };
        return;
    }
    if (type != VCPU_EVT_HW_EXCEPTION) {
        /* External interrupts exit with their own reason (halt.c): no other type can reach here without a hypervisor bug. */
        x->vcpu.ops->dump(&x->vcpu, "unexpected exception type");
        hv_exit(HV_STATUS_FAIL, "vmx_unhandled_exit");
    }
    /* Reflect the hardware exception the bitmap trapped, with its error code. */
    vcpu_inject_exception(&x->vcpu, vector, info & INTR_INFO_DELIVER_CODE, (u32)vmread(VM_EXIT_INTR_ERROR_CODE));
}

static void cr_access(struct vmx_exit *x)
{
    /* Exit qualification for control-register accesses (SDM Vol. 3C 28.2.1, Table 28-3). */
    struct vcpu *v = &x->vcpu;
    u32 cr = x->qual & 0xf, type = (x->qual >> 4) & 3, reg = (x->qual >> 8) & 0xf;
    switch (type) {
    case 0:                                         /* MOV to CR */
        exit_cr_write(v, cr, vcpu_gpr(v, reg));
        return;
    case 1:                                         /* MOV from CR (CR3 with CR3-store exiting) */
        vcpu_set_gpr(v, reg, cr == 3 ? vmread(GUEST_CR3) : vmread(CR0_READ_SHADOW));
        vcpu_skip(v);
        return;
    case 2:                                         /* CLTS: a MOV to CR0 with TS clear */
        exit_cr_write(v, 0, vmread(CR0_READ_SHADOW) & ~(1ull << 3));
        return;
    case 3: {                                       /* LMSW: only PE, MP, EM, TS; it cannot clear PE */
        u64 src = (x->qual >> 16) & 0xf, shadow = vmread(CR0_READ_SHADOW);
        exit_cr_write(v, 0, (shadow & ~0xeull) | (src & 0xf) | (shadow & 1));
        return;
    }
    }
}

/* IN / OUT to a port set in the I/O bitmaps (exit qualification: SDM Vol. 3C 28.2.1, Table 28-5). */
static void io(struct vmx_exit *x)
{
    struct io_access a = {
        .port = (u16)(x->qual >> 16),
        .size = (u8)((x->qual & 7) + 1),
        .in = (x->qual >> 3) & 1,
        .string = (x->qual >> 4) & 1,
        .rep = (x->qual >> 5) & 1,
    };
    if (a.string) {
        /* INS / OUTS: VM-exit instruction information bits 9:7 address size, 17:15 segment (Table 28-8). */
        u32 info = (u32)vmread(VMX_INSTRUCTION_INFO);
        a.addr_bits = (u8)(16u << ((info >> 7) & 7));
        a.seg = (u8)((info >> 15) & 7);
    }
    exit_io(&x->vcpu, &a);
}

/* EPT violation (28.2.1, Table 28-7): bits 2:0 are the access, as core's S2_* bits. */
static void ept_violation(struct vmx_exit *x)
{
    reblock_nmi_after_iret(x, x->qual & (1u << 12));
    exit_stage2_fault(&x->vcpu, vmread(GUEST_PHYSICAL_ADDRESS), (u32)x->qual & 7);
}

/*
 * An INIT signal in VMX non-root operation exits (SDM Vol. 3C 26.2): the guest meant to reset this CPU,
 * so it enters wait-for-SIPI once the exit is recorded (vcpu_exit_resume), as after an emulated INIT.
 */
static void init_signal(struct vmx_exit *x)
{
    apic_emul_init_arrived(x->vcpu.pc);
}

/* The single step of an undecodable APIC store is done (apic_step.h). */
static void monitor_trap(struct vmx_exit *x)
{
    if (apic_step_active(x->vcpu.pc))
        apic_step_trap(&x->vcpu);
}

static void task_switch(struct vmx_exit *x)
{
    vmx_task_switch(&x->vcpu, x->qual);
}

/* The guest can take the held NMI now: vcpu_exit_done() injects it and disarms the window. */
static void nmi_window(struct vmx_exit *x) { (void)x; }
/* The gdb stub's periodic exit (gdbstub=1, vmcs.c): nothing to do here, vcpu_exit_finish() polls the UART. */
static void preemption_timer(struct vmx_exit *x) { (void)x; }

/*
 * A triple fault is the guest's own end. An EPT misconfiguration is the hypervisor's: the map never
 * holds an address at or above MAXPHYADDR (exit_stage2_fault refuses such holes) nor a reserved
 * combination, so no guest access can cause one (SDM Vol. 3C 29.3.3.1).
 */
static void fatal(struct vmx_exit *x)
{
    bool triple = x->reason == EXIT_REASON_TRIPLE_FAULT;
    x->vcpu.ops->dump(&x->vcpu, triple ? "guest triple fault" : "EPT misconfiguration");
    hv_exit(HV_STATUS_FAIL, triple ? "guest_triple_fault" : "ept_misconfig");
}

struct exit_entry {
    exit_handler fn;
    u32 kind;
};

static const struct exit_entry exit_table[VMX_EXIT_REASON_COUNT] = {
    [EXIT_REASON_EXCEPTION_NMI] = { exception, HV_EXIT_EXCEPTION },
    [EXIT_REASON_EXTERNAL_INTERRUPT] = { vmx_halt_intr, HV_EXIT_OTHER },
    [EXIT_REASON_TRIPLE_FAULT] = { fatal, HV_EXIT_TRIPLE_FAULT },
    [EXIT_REASON_INIT] = { init_signal, HV_EXIT_INIT },
    [EXIT_REASON_NMI_WINDOW] = { nmi_window, HV_EXIT_OTHER },
    [EXIT_REASON_TASK_SWITCH] = { task_switch, HV_EXIT_OTHER },
    [EXIT_REASON_CPUID] = { cpuid_full, HV_EXIT_CPUID },
    [EXIT_REASON_GETSEC] = { undefined, HV_EXIT_OTHER },
    [EXIT_REASON_HLT] = { vmx_halt_exit, HV_EXIT_HLT },
    [EXIT_REASON_IO_INSTRUCTION] = { io, HV_EXIT_IO },
    [EXIT_REASON_INVD] = { invd, HV_EXIT_INVD },
    [EXIT_REASON_VMCALL] = { vmcall, HV_EXIT_VMCALL },
    [EXIT_REASON_VMCLEAR] = { undefined, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMLAUNCH] = { undefined, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMPTRLD] = { undefined, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMPTRST] = { undefined, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMREAD] = { undefined, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMRESUME] = { undefined, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMWRITE] = { undefined, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMXOFF] = { undefined, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMXON] = { undefined, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_INVEPT] = { undefined, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_INVVPID] = { undefined, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_VMFUNC] = { undefined, HV_EXIT_VIRT_INSN },
    [EXIT_REASON_CR_ACCESS] = { cr_access, HV_EXIT_CR_ACCESS },
    [EXIT_REASON_MONITOR_TRAP_FLAG] = { monitor_trap, HV_EXIT_OTHER },
    [EXIT_REASON_MSR_READ] = { msr_read, HV_EXIT_MSR_READ },
    [EXIT_REASON_MSR_WRITE] = { msr_write, HV_EXIT_MSR_WRITE },
    [EXIT_REASON_EPT_VIOLATION] = { ept_violation, HV_EXIT_STAGE2_FAULT },
    [EXIT_REASON_EPT_MISCONFIG] = { fatal, HV_EXIT_OTHER },
    [EXIT_REASON_PREEMPTION_TIMER] = { preemption_timer, HV_EXIT_OTHER },
    [EXIT_REASON_WBINVD] = { invd, HV_EXIT_INVD },
    [EXIT_REASON_XSETBV] = { xsetbv, HV_EXIT_XSETBV },
};

/*
 * Exit reasons an instruction causes (SDM Vol. 3C Appendix C): CPUID .. XRSTORS, minus the ones that are
 * events (task switch 9, APIC access 44, EOI 45, EPT 48/49, preemption timer 52, PML full 62, ...).
 */
static bool reason_is_instruction(u32 basic)
{
    static const u8 insn[] = { 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
                               31, 32, 36, 39, 40, 46, 47, 50, 51, 53, 54, 55, 57, 58, 59, 60, 61, 63, 64, 67, 68 };
    for (u32 i = 0; i < sizeof(insn); i++)
        if (insn[i] == basic)
            return true;
    return false;
}

/*
 * An exit without a handler. An instruction the guest can execute at will must not stop the run: it
 * is refused as an instruction the CPU does not offer (#UD) and reported; the run goes on. Any other
 * reason means the controls enabled an exit nobody handles (a hypervisor bug): dump and stop.
 */
static void unhandled(struct vmx_exit *x, u32 basic)
{
    static u32 reports;
    if (!reason_is_instruction(basic)) {
        x->vcpu.ops->dump(&x->vcpu, "exit without a handler");
        hv_exit(HV_STATUS_FAIL, "vmx_unhandled_exit");
    }
    if (__atomic_fetch_add(&reports, 1, __ATOMIC_RELAXED) < 8)
        printk("vmx: CPU %u: exit without a handler: exit reason %u (%s) at RIP 0x%lx: #UD reflected\n",
               x->vcpu.pc->index, basic, vmx_exit_reason_name(basic), vmread(GUEST_RIP));
    vcpu_inject_ud(&x->vcpu);
}

/* A failed VM entry (27.8): the basic reason says which class of guest state check failed. */
static __noreturn void entry_failure(struct vmx_exit *x)
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
    x->vcpu.ops->dump(&x->vcpu, what);
    hv_exit(HV_STATUS_FAIL, "vmx_entry_failure");
}

/* The operands that VT-x's exit information holds (the GPR ones are core's, exit_common.h). */
static void record_operands(struct vmx_exit *x, u32 basic, u32 kind)
{
    struct hv_record *r = x->vcpu.rec;
    exit_record_gpr_operands(&x->vcpu, kind);
    switch (basic) {
    case EXIT_REASON_CR_ACCESS:
        r->arg0 = x->qual & 0xf;                        /* CR number */
        if (((x->qual >> 4) & 3) == 0)                  /* MOV to CR: the value written */
            r->arg1 = vcpu_gpr(&x->vcpu, (x->qual >> 8) & 0xf);
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
        r->arg1 = x->vcpu.gpr[0];                       /* RAX: the value of an OUT */
        break;
    }
}

/*
 * An event whose delivery the exit interrupted (IDT-vectoring information, 28.2.4) is delivered again
 * on entry (30.7.1.1), software events with the instruction length the exit reports. A task switch
 * caused by the event is the exception: its exit already describes the event.
 */
static void note_interrupted_event(struct vmx_exit *x, u32 basic)
{
    u32 idt = (u32)vmread(IDT_VECTORING_INFO);
    if (!(idt & INTR_INFO_VALID) || basic == EXIT_REASON_TASK_SWITCH)
        return;
    x->vcpu.event = (struct vcpu_event){
        .valid = true,
        .has_error = (idt & INTR_INFO_DELIVER_CODE) != 0,
        .type = (u8)((idt >> 8) & 7),
        .vector = (u8)idt,
        .error = (u32)vmread(IDT_VECTORING_ERROR_CODE),
        .insn_len = (u32)vmread(VM_EXIT_INSTRUCTION_LEN),
    };
}

/* Every exit the fast path does not take: decoded, handled through exit_table, finished in core. */
void vmx_exit_full(struct percpu *pc, struct guest_regs *regs, u32 reason)
{
    gdbstub_dr_exit_begin(pc);          /* the gdb stub's hardware breakpoints, when it has some */
    u32 basic = reason & 0xffff;
    u64 qual = vmread(EXIT_QUALIFICATION);
    struct hv_record *rec = trace_exit_begin(pc, vmread(GUEST_CR3), (u16)basic, qual, vmread(GUEST_RIP));
    struct vmx_cpu *v = pc->vendor;     /* a local (x escapes to the handlers): kept in a register for the end */
    struct vmx_exit x = {
        .vcpu = { &vmx_vcpu_ops, pc, (u64 *)regs, rec, "vmx", { 0 } },
        .v = v,
        .reason = reason,
        .qual = qual,
    };
    rec->insn_len = (u8)vmread(VM_EXIT_INSTRUCTION_LEN);
    if (x.reason & EXIT_REASON_ENTRY_FAILURE) {
        rec->kind = HV_EXIT_ENTRY_FAILURE;
        entry_failure(&x);
    }
    const struct exit_entry *e = basic < VMX_EXIT_REASON_COUNT ? &exit_table[basic] : NULL;
    rec->kind = (u8)(e && e->fn ? e->kind : HV_EXIT_OTHER);
    if (basic != EXIT_REASON_MONITOR_TRAP_FLAG && basic != EXIT_REASON_EXCEPTION_NMI)
        apic_step_cut(&x.vcpu);     /* the step's own exits: MTF, or #DB where there is no MTF */
    record_operands(&x, basic, rec->kind);
    if (basic < VMX_EXIT_REASON_COUNT)
        x.v->exits[basic]++;
    note_interrupted_event(&x, basic);
    if (e && e->fn)
        e->fn(&x);
    else
        unhandled(&x, basic);
    vcpu_exit_finish(&x.vcpu, rec);
    vmx_halt_check(v, &x);              /* after the event is known: a halted guest stays halted or wakes */
}

__noreturn void vmx_resume_failed(void)
{
    u32 err = (u32)vmread(VM_INSTRUCTION_ERROR);
    hv_fail(HV_STATUS_FAIL, "vmresume_failed", "CPU %u: VMRESUME failed: VM-instruction error %u (%s)",
            this_cpu()->index, err, vmx_instruction_error_name(err));
}
