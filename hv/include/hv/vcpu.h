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
#define VEC_BP 3
#define VEC_UD 6
#define VEC_DF 8
#define VEC_TS 10
#define VEC_NP 11
#define VEC_SS 12
#define VEC_GP 13
#define VEC_PF 14

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
    /* RIP += len and the STI / MOV-SS blocking the instruction may have set ends with it. */
    void (*advance)(struct vcpu *v, u32 len);
    u32 (*cpl)(struct vcpu *v);
    /* The current code size: 16, 32 or 64 (CS.L with EFER.LMA, else CS.D; real mode is 16). */
    u32 (*code_bits)(struct vcpu *v);
    u64 (*seg_base)(struct vcpu *v, enum vcpu_seg seg);
    /* The guest's CR0, CR3, CR4 and EFER as the guest sees them. */
    void (*paging)(struct vcpu *v, struct guest_paging *out);
    /* Deliver an event on the next entry (type VCPU_EVT_*). */
    void (*inject)(struct vcpu *v, u32 type, u32 vector, bool has_error, u32 error);
    /* Drop the guest's cached translations after a stage-2 change. */
    void (*stage2_flush)(struct vcpu *v);
};

struct vcpu {
    const struct vcpu_ops *ops;
    struct percpu *pc;
    u64 *gpr;                   /* the exit's register frame (struct guest_regs order); RSP is ops->rsp */
    struct hv_record *rec;      /* this exit's trace record */
};

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

static inline void vcpu_inject_exception(struct vcpu *v, u32 vector, bool has_error, u32 error)
{
    v->ops->inject(v, VCPU_EVT_HW_EXCEPTION, vector, has_error, error);
}

static inline void vcpu_inject_gp0(struct vcpu *v) { vcpu_inject_exception(v, VEC_GP, true, 0); }
static inline void vcpu_inject_ud(struct vcpu *v) { vcpu_inject_exception(v, VEC_UD, false, 0); }

#endif
