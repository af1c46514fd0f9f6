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
 * An exit handler's first step: the exit's record, zeroed but for the exit's TSC (the start of its
 * handling time, abi.h) and the guest's CR3 at the exit (what identifies its address space). It is
 * built in place in the CPU's ring slot (ring_reserve) when the ring takes one, and published by
 * trace_exit(): the handler may write it until then, never after.
 */
static inline struct hv_record *trace_exit_begin(struct percpu *pc, u64 guest_cr3)
{
    struct hv_record *slot = pc->ring ? ring_reserve(pc->ring) : 0;
    struct hv_record *rec = slot ? slot : &trace_spare[pc->index];
    trace_building[pc->index] = slot;
    /* After the reservation: a wait for the reader is not the exit's handling time. The builtin
     * because vmx/exit.c cannot include x86.h (its cpuid). */
    *rec = (struct hv_record){ .tsc = __builtin_ia32_rdtsc(), .cr3 = guest_cr3 };
    return rec;
}
void trace_exit(struct percpu *pc, struct hv_record *rec);
/* Allocate and register this CPU's ring (capacity from the command line). */
void trace_init_cpu(struct percpu *pc);
const char *exit_kind_name(u32 kind);

#endif
