/*
 * The exit-record producer (core/trace/ring.c): one lock-free single-producer ring per CPU (abi.h struct
 * hv_ring). Freestanding and host-compilable: tests/native builds it to check the publication protocol.
 */
#ifndef HV_RING_H
#define HV_RING_H

#include <hv/abi.h>
#include <hv/types.h>

_Static_assert(sizeof(struct hv_record) == HV_RECORD_SIZE, "one record per cache line");
_Static_assert(sizeof(struct hv_ring) == 192, "ring header: three cache lines");

static inline struct hv_record *ring_records(struct hv_ring *r)
{
    return (struct hv_record *)(r + 1);
}

static inline u64 ring_bytes(u32 capacity)
{
    return sizeof(struct hv_ring) + (u64)capacity * sizeof(struct hv_record);
}

/*
 * Initialise a ring in zeroed memory of ring_bytes(capacity); capacity must be a power of two.
 * wait_ticks: how long a full ring may wait for its reader (TSC ticks, 0 = never; abi.h struct hv_ring).
 */
void ring_init(struct hv_ring *r, u32 cpu, u32 capacity, u32 policy, bool enabled, u64 wait_ticks);

/*
 * Publish one record (seq, cpu and the drop flag are filled in here). Returns false when the record
 * was dropped (ring full and bounded by its reader, see abi.h) or tracing is off. Blocks only while
 * the ring waits for its reader, at most wait_ticks in all: call it holding no lock.
 */
bool ring_publish(struct hv_ring *r, const struct hv_record *rec);

#endif
