/* The discovery header instance and what fills it (core/trace/discovery.c). */
#ifndef HV_DISCOVERY_H
#define HV_DISCOVERY_H

#include <hv/abi.h>
#include <hv/types.h>

extern struct hv_discovery hv_trace;

void discovery_init(u32 cpus);

#endif
