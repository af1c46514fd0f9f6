/* The discovery header instance and what fills it (core/trace/discovery.c). */
#ifndef HV_DISCOVERY_H
#define HV_DISCOVERY_H

#include <hv/abi.h>
#include <hv/types.h>

extern struct hv_discovery hv_trace;

void discovery_init(u32 online);
/* List [base, base+length) in the discovery header as memory no one writes after launch (abi.h
   HV_IMMUTABLE_MAX); before the CPU that uses it is launched. */
void discovery_add_immutable(const void *base, u64 length);

#endif
