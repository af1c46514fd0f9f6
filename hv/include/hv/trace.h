/*
 * Core trace API: every VM exit of every back end is reported here once, after it is handled, with
 * its vendor-neutral kind, native reason and the operands that make it meaningful. It counts the exit
 * per kind and publishes a record into the CPU's ring (core/trace/ring.c).
 */
#ifndef HV_TRACE_H
#define HV_TRACE_H

#include <hv/abi.h>
#include <hv/percpu.h>
#include <hv/ring.h>

/*
 * Each CPU's record in the making (trace.c): its ring's reserved slot, or trace_spare[] when the ring
 * takes none (tracing off, a full ring dropping). Only that CPU touches its entries.
 */
extern struct hv_record trace_spare[HV_MAX_CPUS];
extern struct hv_record *trace_building[HV_MAX_CPUS];

/*
 * An exit handler's first step: the exit's record, holding the exit's TSC (the start of its handling
 * time, abi.h), its native reason, qualification and RIP, and the guest's CR3 at the exit (what
 * identifies its address space); every other field zero. It is built in place in the CPU's ring slot
 * (ring_reserve) when the ring takes one, and published by trace_exit(): the handler may write it
 * until then, never after.
 */
static inline struct hv_record *trace_exit_begin(struct percpu *pc, u64 guest_cr3, u16 reason, u64 qual, u64 rip)
{
    struct hv_record *slot = pc->ring ? ring_reserve(pc->ring) : 0;
    struct hv_record *rec = slot ? slot : &trace_spare[pc->index];
    trace_building[pc->index] = slot;
    /*
     * Field by field, not a compound literal: that is a REP STOSQ over the whole record first (ten
     * iterations). seq is the ring's (0 in a reserved slot, never written in the spare). The TSC after
     * the reservation: a wait for the reader is not the exit's handling time; the builtin because
     * vmx/exit.c cannot include x86.h (its cpuid).
     */
    rec->tsc = __builtin_ia32_rdtsc();
    rec->cpu = 0;
    rec->kind = 0;
    rec->flags = 0;
    rec->reason = reason;
    rec->insn_len = 0;
    rec->reserved = 0;
    rec->qual = qual;
    rec->rip = rip;
    rec->gpa = 0;
    rec->arg0 = 0;
    rec->arg1 = 0;
    rec->tsc_resume = 0;
    rec->cr3 = guest_cr3;
    _Static_assert(__builtin_offsetof(struct hv_record, cr3) + 8 == sizeof(struct hv_record),
                   "trace_exit_begin writes every field of the record");
    return rec;
}
void trace_exit(struct percpu *pc, struct hv_record *rec);
/* Allocate and register this CPU's ring (capacity from the command line). */
void trace_init_cpu(struct percpu *pc);
const char *exit_kind_name(u32 kind);

#endif
