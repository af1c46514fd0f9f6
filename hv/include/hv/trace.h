/*
 * Core trace API: every VM exit of every back end is reported here once, with its vendor-neutral
 * kind and native reason. Today it keeps per-CPU counters; the per-CPU rings build on the same call.
 */
#ifndef HV_TRACE_H
#define HV_TRACE_H

#include <hv/percpu.h>

static inline void trace_exit(struct percpu *pc, u32 kind, u32 native_reason)
{
    (void)native_reason;    /* recorded by the rings; the back end keeps native counters itself */
    pc->exit_kinds[kind < HV_EXIT_KIND_COUNT ? kind : HV_EXIT_OTHER]++;
}

const char *exit_kind_name(u32 kind);

#endif
