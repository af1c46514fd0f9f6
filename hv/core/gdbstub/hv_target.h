/* The hypervisor as gdb's target (hv_target.c), for stop.c. */
#ifndef HV_GDBSTUB_HV_TARGET_H
#define HV_GDBSTUB_HV_TARGET_H

#include <hv/exception_frame.h>
#include <hv/gdb_stub.h>

extern const struct gdb_target_ops hv_gdb_target_ops;
/* Each stopped CPU's registers (its exception frame, or the one park.S built); 0: running. */
extern struct exception_frame *volatile gdbstub_frames[HV_MAX_CPUS];
/* The CPU that runs the stub now. */
u32 gdbstub_owner_cpu(void);

#endif
