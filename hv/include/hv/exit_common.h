/*
 * The exit handlers both back ends share (doVmxExitHandler's cases, written once). A vendor's
 * dispatcher decodes its exit into these calls; they act on the guest only through struct vcpu.
 */
#ifndef HV_EXIT_COMMON_H
#define HV_EXIT_COMMON_H

#include <hv/vcpu.h>

/* Stage-2 fault access bits (an EPT violation's qualification bits 2:0 say the same, SDM Table 28-7). */
#define S2_READ  (1u << 0)
#define S2_WRITE (1u << 1)
#define S2_FETCH (1u << 2)

/* A decoded IN / OUT (VT-x exit qualification, SDM Vol. 3C Table 28-5; SVM EXITINFO1, APM 15.10.2). */
struct io_access {
    u16 port;
    u8 size;            /* 1, 2 or 4 */
    bool in;
    bool string;        /* INS / OUTS */
    bool rep;
    u8 addr_bits;       /* string forms: address size 16, 32 or 64 */
    u8 seg;             /* string forms: OUTS's source segment (enum vcpu_seg); INS always writes ES */
};

void exit_cpuid(struct vcpu *v);
void exit_msr_read(struct vcpu *v);
void exit_msr_write(struct vcpu *v);
void exit_invd(struct vcpu *v);
void exit_hypercall(struct vcpu *v);
/* An instruction the guest does not have (VMX / SVM instructions, GETSEC): #UD as on bare metal. */
void exit_undefined(struct vcpu *v);
void exit_xsetbv(struct vcpu *v);
void exit_io(struct vcpu *v, const struct io_access *a);
/* MOV to CR0 / CR3 / CR4 with its value: checked as the SDM's MOV CR says, then written by the vendor. */
void exit_cr_write(struct vcpu *v, u32 cr, u64 value);
/* A stage-2 fault at gpa (S2_* access): isolation, the xAPIC trap, holes; anything else is fatal. */
void exit_stage2_fault(struct vcpu *v, u64 gpa, u32 access);
/* The operands of the exits whose meaning is in GPRs (CPUID leaf, MSR index and value, hypercall). */
void exit_record_gpr_operands(struct vcpu *v, u32 kind);
/* The guest's GPRs on the console, for fatal dumps. */
void exit_print_gprs(const struct vcpu *v);
/* MAXPHYADDR (CPUID.80000008H:EAX[7:0], 36 when the leaf is absent: SDM Vol. 3A 4.1.4). */
u32 cpu_phys_bits(void);

#endif
