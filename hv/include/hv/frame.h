/*
 * Record frames on port 0xE9 (core/trace/frame.c). A frame is written under the console lock, so frames and
 * console lines never interleave. That lock is shared by CPUs, which is why this channel is opt-in
 * (trace_e9=1) and the rings, which never lock, are the primary path. No guest byte reaches the port
 * (core/guest/io_policy.c intercepts it), so every frame on it is the hypervisor's.
 */
#ifndef HV_FRAME_H
#define HV_FRAME_H

#include <hv/abi.h>
#include <hv/types.h>

u32 frame_crc32(const void *data, size_t n);
void frame_emit(const struct hv_record *rec);

#endif
