/*
 * Core trace API: every VM exit of every back end is reported here once, after it is handled, with
 * its vendor-neutral kind, native reason and the operands that make it meaningful. It counts the exit
 * per kind and publishes a record into the CPU's ring (core/trace/ring.c).
 */
#ifndef HV_TRACE_H
#define HV_TRACE_H

#include <hv/abi.h>
#include <hv/percpu.h>

/*
 * An exit handler's first step: a zeroed record with the exit's TSC (the start of its handling time,
 * abi.h) and the guest's CR3 at the exit (what identifies its address space).
 */
static inline void trace_exit_start(struct hv_record *rec, u64 guest_cr3)
{
    /* Inline on every exit; the builtin because vmx/exit.c cannot include x86.h (its cpuid). */
    *rec = (struct hv_record){ .tsc = __builtin_ia32_rdtsc(), .cr3 = guest_cr3 };
}
void trace_exit(struct percpu *pc, struct hv_record *rec);
/* Allocate and register this CPU's ring (capacity from the command line). */
void trace_init_cpu(struct percpu *pc);
const char *exit_kind_name(u32 kind);

#endif
