/*
 * The vendor-neutral view of the CPU that exited (the shape of hvpp's vcpu API). Handlers that both
 * back ends share live in core/ and touch the guest only through this: its registers, RIP and the
 * exiting instruction's length, stepping over an instruction, event injection, CPL, code size,
 * segment bases, paging registers and the stage-2 flush. vmx/ and svm/ each provide one vcpu_ops.
 */
#ifndef HV_VCPU_H
#define HV_VCPU_H

#include <hv/guest_mem.h>
#include <hv/percpu.h>

struct hv_record;

/* Segment registers in the order of the Sreg field of the instruction encoding (SDM Vol. 2A 3.1.1.3). */
enum vcpu_seg { VCPU_ES, VCPU_CS, VCPU_SS, VCPU_DS, VCPU_FS, VCPU_GS };

/*
 * Event types as VT-x's interruption-information field encodes them (SDM Vol. 3C 25.8.3); the SVM
 * back end translates them to EVENTINJ types (APM Vol. 2 15.20).
 */
#define VCPU_EVT_EXTINT        0
#define VCPU_EVT_NMI           2
#define VCPU_EVT_HW_EXCEPTION  3
#define VCPU_EVT_SW_INT        4
#define VCPU_EVT_PRIV_SW_EXC   5        /* INT1 (ICEBP) */
#define VCPU_EVT_SW_EXC        6        /* INT3, INTO */

/* Architectural exception vectors (SDM Vol. 3A 6.3.1, Table 6-1). */
#define VEC_DE 0
#define VEC_DB 1
#define VEC_NMI 2
#define VEC_BP 3
#define VEC_UD 6
#define VEC_DF 8
#define VEC_TS 10
#define VEC_NP 11
#define VEC_SS 12
#define VEC_GP 13
#define VEC_PF 14
#define VEC_MC 18

/* An event to deliver on the next entry (what VM_ENTRY_INTR_INFO / EVENTINJ will carry). */
struct vcpu_event {
    bool valid;
    bool has_error;
    u8 type;                    /* VCPU_EVT_* */
    u8 vector;
    u32 error;
    u32 insn_len;               /* software interrupts and exceptions: the length of INT n / INT3 / INTO */
};

struct vcpu;

struct vcpu_ops {
    u64 (*rsp)(struct vcpu *v);
    void (*set_rsp)(struct vcpu *v, u64 value);
    u64 (*rip)(struct vcpu *v);
    void (*set_rip)(struct vcpu *v, u64 value);
    u64 (*rflags)(struct vcpu *v);
    void (*set_rflags)(struct vcpu *v, u64 value);
    /* The exiting instruction's length where the CPU reports it (VT-x instruction exits, SVM nRIP), else 0. */
    u32 (*insn_len)(struct vcpu *v);
    /*
     * RIP += len and the STI / MOV-SS blocking the instruction may have set ends with it. Returns the
     * guest's RFLAGS (unchanged by this), which the caller needs for TF next: one call, not two.
     */
    u64 (*advance)(struct vcpu *v, u32 len);
    u32 (*cpl)(struct vcpu *v);
    /* The current code size: 16, 32 or 64 (CS.L with EFER.LMA, else CS.D; real mode is 16). */
    u32 (*code_bits)(struct vcpu *v);
    u64 (*seg_base)(struct vcpu *v, enum vcpu_seg seg);
    /* CR2 for a #PF the hypervisor raises (SDM Vol. 3A 6.15: the faulting linear address). */
    void (*set_cr2)(struct vcpu *v, u64 value);
    /* The guest's CR0, CR3, CR4 and EFER as the guest sees them. */
    void (*paging)(struct vcpu *v, struct guest_paging *out);
    /* Write the event to deliver on the next entry (the dispatcher does, once per exit). */
    void (*inject)(struct vcpu *v, const struct vcpu_event *e);
    /* The single-step trap of RFLAGS.TF after an emulated instruction: #DB with DR6.BS (SDM Vol. 3B 18.3.1.4). */
    void (*single_step)(struct vcpu *v);
    /*
     * MOV to CR0/CR3/CR4 after core's architectural checks: the vendor's own rules (fixed bits, the
     * CR4 bits this CPU supports) and the write itself, with what the instruction implies (long-mode
     * activation, TLB flush, PDPTE load). False: #GP(0).
     */
    bool (*write_cr)(struct vcpu *v, u32 cr, u64 value);
    /*
     * An MSR the policy table gives the vendor (MSR_VENDOR: FEATURE_CONTROL under VT-x, EFER and VM_CR
     * under SVM): VCPU_MSR_DONE (a read fills *value) or VCPU_MSR_GP; VCPU_MSR_PASS (the vendor does
     * not have it) is #GP too.
     */
    int (*msr)(struct vcpu *v, u32 msr, bool write, u64 *value);
    /* Optional: the guest's TSC = host TSC + offset from the next entry on (a guest write of IA32_TSC). */
    bool (*set_tsc_offset)(struct vcpu *v, u64 offset);
    /* Can an NMI be injected now (no NMI, STI or MOV-SS blocking)? */
    bool (*nmi_allowed)(struct vcpu *v);
    /* Optional: exit as soon as the guest can take an NMI (VT-x NMI-window exiting, SDM Vol. 3C 26.6.2). */
    void (*nmi_window)(struct vcpu *v, bool on);
    /*
     * Optional: execute exactly one guest instruction and exit after it (on), or stop doing so (off):
     * VT-x's monitor trap flag, SVM's RFLAGS.TF with the #DB intercept (apic_step.h).
     */
    bool (*step_arm)(struct vcpu *v, bool on);   /* false: this CPU cannot */
    /* Before a fatal end: record the exit, snapshot the VMCS / VMCB, print the vendor's state and why. */
    void (*dump)(struct vcpu *v, const char *why);
    /* Drop the guest's cached translations after a stage-2 change. */
    void (*stage2_flush)(struct vcpu *v);
};

/*
 * Every back end implements these accessors as static functions of the same names (hv/vmx/vcpu.c,
 * hv/svm/vcpu.c): its ops table lists them with this, then adds its optional and own entries.
 */
#define VCPU_OPS_ACCESSORS                                                                              \
    .rsp = get_rsp, .set_rsp = set_rsp, .rip = get_rip, .set_rip = set_rip, .rflags = get_rflags,          \
    .set_rflags = set_rflags, .insn_len = insn_len, .advance = advance, .cpl = cpl, .code_bits = code_bits, \
    .seg_base = seg_base, .set_cr2 = set_cr2, .paging = paging, .inject = inject, .single_step = single_step, \
    .write_cr = write_cr, .msr = msr, .set_tsc_offset = set_tsc_offset, .nmi_allowed = nmi_allowed,        \
    .step_arm = step_arm, .dump = dump

#define VCPU_MSR_PASS 0
#define VCPU_MSR_DONE 1
#define VCPU_MSR_GP   2

struct vcpu {
    const struct vcpu_ops *ops;
    struct percpu *pc;
    u64 *gpr;                   /* the exit's register frame (struct guest_regs order); RSP is ops->rsp */
    struct hv_record *rec;      /* this exit's trace record */
    const char *vendor;         /* "vmx" / "svm": console prefix */
    struct vcpu_event event;    /* to deliver on entry: re-injected from the exit, or raised by a handler */
};

/*
 * An NMI reached this CPU for the guest (an NMI exit, or one taken while in the hypervisor). A kick
 * the hypervisor sent itself (percpu.kicked) is consumed instead. Delivered by vcpu_exit_done().
 */
void vcpu_nmi_arrived(struct percpu *pc);
/*
 * The end of every exit, before the event is written: a held NMI is injected when the guest can take
 * it (else the vendor's NMI window is armed).
 */
void vcpu_exit_done(struct vcpu *v);
/*
 * The tail of every exit, the same on both back ends (the seed's doVmxExitHandler epilogue):
 * vcpu_exit_done(), the pending event written for entry, then vcpu_exit_resume() (exit_fast.h): the
 * record traced, the run ended if a handler asked for it (percpu.end_reason: the guest's last exit is
 * in the trace first), an INIT taken (wait-for-SIPI, a restart at the SIPI vector), and the CPU
 * marked as back to the guest. rec->flags gets HV_REC_INJECTED for an event.
 */
void vcpu_exit_finish(struct vcpu *v, struct hv_record *rec);

static inline u64 vcpu_gpr(struct vcpu *v, u32 n)
{
    n &= 15;
    return n == 4 ? v->ops->rsp(v) : v->gpr[n];
}

static inline void vcpu_set_gpr(struct vcpu *v, u32 n, u64 value)
{
    n &= 15;
    if (n == 4)
        v->ops->set_rsp(v, value);
    else
        v->gpr[n] = value;
}

/*
 * Raise a hardware exception in the guest. An event already pending (one whose delivery the exit
 * interrupted) combines with it as the CPU would (SDM Vol. 3A 6.15, Table 6-5): #DF, or a triple
 * fault that ends the run. In real mode no error code is pushed (SDM Vol. 3C 27.2.1.3).
 */
void vcpu_inject_exception(struct vcpu *v, u32 vector, bool has_error, u32 error);
/* Step over the exiting instruction (length from the CPU, or decoded) and raise TF's single-step trap. */
void vcpu_skip(struct vcpu *v);
/* Step over 'len' bytes (an instruction core decoded itself) and raise TF's single-step trap. */
void vcpu_skip_len(struct vcpu *v, u32 len);

static inline void vcpu_inject_gp0(struct vcpu *v) { vcpu_inject_exception(v, VEC_GP, true, 0); }
static inline void vcpu_inject_ud(struct vcpu *v) { vcpu_inject_exception(v, VEC_UD, false, 0); }

#endif
