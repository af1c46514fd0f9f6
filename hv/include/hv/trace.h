/*
 * Core trace API: every VM exit of every back end is reported here once, before it is handled, with
 * its vendor-neutral kind, native reason and the operands that make it meaningful. It counts the exit
 * per kind and publishes a record into the CPU's ring (core/trace/ring.c).
 */
#ifndef HV_TRACE_H
#define HV_TRACE_H

#include <hv/abi.h>
#include <hv/percpu.h>

void trace_exit(struct percpu *pc, struct hv_record *rec);
/* Allocate and register this CPU's ring (capacity from the command line). */
void trace_init_cpu(struct percpu *pc);
const char *exit_kind_name(u32 kind);

#endif
