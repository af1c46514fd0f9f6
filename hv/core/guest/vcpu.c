/*
 * What every back end does to an exiting CPU the same way: combining a new exception with the event
 * whose delivery the exit interrupted, and stepping over an instruction (with RFLAGS.TF's trap).
 */
#include <hv/abi.h>
#include <hv/apic_emul.h>
#include <hv/apic_step.h>
#include <hv/backend.h>
#include <hv/console.h>
#include <hv/exit_fast.h>
#include <hv/gdbstub.h>
#include <hv/msr_emul.h>
#include <hv/panic.h>
#include <hv/trace.h>
#include <hv/vcpu.h>
#include <hv/x86.h>


/* Exception classes for delivering a second exception during the first (SDM Vol. 3A 6.15, Table 6-4). */
enum exc_class { EXC_BENIGN, EXC_CONTRIBUTORY, EXC_PAGE_FAULT, EXC_DOUBLE_FAULT };

static enum exc_class exc_class(const struct vcpu_event *e)
{
    if (e->type != VCPU_EVT_HW_EXCEPTION)
        return EXC_BENIGN;              /* interrupts, NMIs and software events combine as benign */
    switch (e->vector) {
    case VEC_DE:
    case VEC_TS:
    case VEC_NP:
    case VEC_SS:
    case VEC_GP:
        return EXC_CONTRIBUTORY;
    case VEC_PF:
        return EXC_PAGE_FAULT;
    case VEC_DF:
        return EXC_DOUBLE_FAULT;
    default:
        return EXC_BENIGN;
    }
}

void vcpu_inject_exception(struct vcpu *v, u32 vector, bool has_error, u32 error)
{
    struct guest_paging p;
    v->ops->paging(v, &p);
    struct vcpu_event next = { true, has_error && (p.cr0 & X86_CR0_PE), VCPU_EVT_HW_EXCEPTION, (u8)vector, error, 0 };
    if (v->event.valid) {
        /* Table 6-5: which second exception during the first is a double fault, which a shutdown. */
        enum exc_class first = exc_class(&v->event), second = exc_class(&next);
        if (first == EXC_DOUBLE_FAULT && (second == EXC_CONTRIBUTORY || second == EXC_PAGE_FAULT)) {
            /* A triple fault: the CPU shuts down. The guest ended the run itself. */
            v->event.valid = false;
            v->ops->dump(v, "guest triple fault (an exception while delivering #DF)");
            hv_exit(HV_STATUS_FAIL, "guest_triple_fault");
        }
        if ((first == EXC_CONTRIBUTORY && second == EXC_CONTRIBUTORY) ||
            (first == EXC_PAGE_FAULT && second != EXC_BENIGN))
            next = (struct vcpu_event){ true, (p.cr0 & X86_CR0_PE) != 0, VCPU_EVT_HW_EXCEPTION, VEC_DF, 0, 0 };
        /* Otherwise the two are handled serially: the second is delivered, the first comes back on re-execution. */
    }
    v->event = next;
}

void vcpu_skip_len(struct vcpu *v, u32 len)
{
    if (v->ops->advance(v, len) & X86_RFLAGS_TF)
        v->ops->single_step(v);         /* the trap the instruction would have raised (SDM Vol. 3B 18.3.1.4) */
}

/*
 * Where the CPU does not report the exiting instruction's length (SVM without next-RIP saving), it is
 * decoded from the bytes at RIP, and those may no longer be the instruction that exited: another CPU
 * (or a DMA) rewrote them in between. Cross-modifying code without a serializing step lets the CPU run
 * the old or the new bytes (SDM Vol. 3A 9.1.3), so the guest gets the new ones: RIP stays and the CPU
 * executes what is there now (a page that vanished faults in the guest, as it should). The same RIP
 * failing again and again is no race but bytes the decoder cannot size: #UD, never a stop.
 */
#define UNSIZED_RETRIES 4

static struct {
    u64 rip;
    u32 count;
} unsized[HV_MAX_CPUS];

static void skip_unsized(struct vcpu *v)
{
    u32 cpu = v->pc->index;
    u64 rip = v->ops->rip(v);
    unsized[cpu].count = unsized[cpu].rip == rip ? unsized[cpu].count + 1 : 1;
    unsized[cpu].rip = rip;
    static u32 reports;
    bool give_up = unsized[cpu].count >= UNSIZED_RETRIES;
    if (__atomic_fetch_add(&reports, 1, __ATOMIC_RELAXED) < 8)
        printk("CPU %u: the instruction that exited at RIP 0x%lx has no length the hypervisor can decode: %s\n",
               cpu, rip, give_up ? "#UD reflected" : "its bytes changed (cross-modifying code): executed again");
    if (give_up) {
        unsized[cpu].count = 0;
        vcpu_inject_ud(v);
    }
}

void vcpu_skip(struct vcpu *v)
{
    u32 len = v->ops->insn_len(v);
    if (!len) {
        skip_unsized(v);
        return;
    }
    vcpu_skip_len(v, len);
}

void vcpu_nmi_arrived(struct percpu *pc)
{
    if (__atomic_exchange_n(&pc->kicked, 0, __ATOMIC_ACQ_REL)) {
        if (gdbstub_port)
            gdbstub_kicked();           /* the kick of a gdb stop: park until gdb resumes */
        return;
    }
    pc->nmi_pending = 1;                /* NMIs do not queue: one pending at most (SDM Vol. 3A 6.7.1) */
}

/* An NMI is held for the guest: inject it now, or ask for an exit once the guest can take it. */
static __attribute__((noinline)) void deliver_nmi(struct vcpu *v)
{
    struct percpu *pc = v->pc;
    if (!v->event.valid && v->ops->nmi_allowed(v)) {
        v->event = (struct vcpu_event){ .valid = true, .type = VCPU_EVT_NMI, .vector = 2 };
        pc->nmi_pending = 0;
        if (v->ops->nmi_window)
            v->ops->nmi_window(v, false);
    } else if (v->ops->nmi_window) {
        v->ops->nmi_window(v, true);    /* otherwise the next exit tries again */
    }
}

/* vcpu_exit_done's body, inline into vcpu_exit_finish: every exit, and almost never an NMI held. */
static inline __attribute__((always_inline)) void exit_done(struct vcpu *v)
{
    msr_emul_stage2_sync(v);
    if (v->pc->nmi_pending)
        deliver_nmi(v);
}

void vcpu_exit_done(struct vcpu *v)
{
    exit_done(v);
}

void vcpu_take_init(struct percpu *pc)
{
    /* INIT: everything of the old context is dropped (SDM Vol. 3A 9.1.1), held NMIs included. */
    gdbstub_dr_exit_end(pc);
    pc->nmi_pending = 0;
    pc->kicked = 0;
    pc->exit_regs = NULL;               /* the exit's frame with it (vmx/exit_fast.c) */
    virt_restart_this_cpu();
}

void vcpu_exit_end(struct percpu *pc)
{
    virt_print_exit_counts();
    if (pc->end_has_guest_code)
        hv_exit_guest_code(pc->end_status, pc->end_reason, pc->end_guest_code);
    hv_exit(pc->end_status, pc->end_reason);
}

void vcpu_exit_finish(struct vcpu *v, struct hv_record *rec)
{
    exit_done(v);
    if (v->event.valid) {
        apic_step_cut(v);               /* the event's handler must not run with the xAPIC page redirected */
        v->ops->inject(v, &v->event);
        rec->flags |= HV_REC_INJECTED;
    }
    vcpu_exit_resume(v->pc, rec, rec->kind, false, break_armed());
}
