/* Hypercalls (abi.h HV_HC_*), shared by the back ends once they have checked CPL 0. */
#ifndef HV_HYPERCALL_H
#define HV_HYPERCALL_H

#include <hv/percpu.h>

u64 hypercall_dispatch(struct percpu *pc, u64 fn, u64 arg);

#endif
