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

/*
 * ring_publish in two halves, for a record built in its slot: ring_reserve decides as ring_publish
 * does (NULL: dropped or tracing off; may wait the same way) and marks the next slot being written
 * (seq 0); the caller fills every field but seq, cpu and the drop flag; ring_commit publishes it. At
 * most one reserved slot per ring; a slot reserved again without a commit is simply rewritten.
 */
static inline struct hv_record *ring_slot_rewrite_in(struct hv_ring *r, u64 head, u32 capacity)
{
    struct hv_record *slot = &ring_records(r)[head & (capacity - 1)];
    *(volatile u64 *)&slot->seq = 0;            /* seq: the slot is being rewritten */
    __asm__ volatile("" ::: "memory");          /* before any field (ring.c's publication order) */
    return slot;
}
#define ring_slot_rewrite(r, head) ring_slot_rewrite_in(r, head, (r)->capacity)
/* ring_reserve's case of a full ring that may wait or drop (out of line). */
struct hv_record *ring_reserve_full(struct hv_ring *r, u64 head);
/*
 * Inline: on every exit. A ring with room needs no look at its reader; a full one that nobody reads
 * overwrites its oldest record here too ('overwrites': the usual state of a ring without a reader,
 * issue 18), and only a bounded one (abi.h policies) goes out of line.
 */
static inline struct hv_record *ring_reserve(struct hv_ring *r)
{
    if (!__atomic_load_n(&r->enabled, __ATOMIC_RELAXED))
        return 0;
    u64 head = r->head;
    u32 capacity = r->capacity;
    if (head - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) >= capacity &&
        !(r->overwrites && __atomic_load_n(&r->reader, __ATOMIC_ACQUIRE) != HV_READER_ATTACHED))
        return ring_reserve_full(r, head);
    return ring_slot_rewrite_in(r, head, capacity);
}
/* Inline: every traced exit ends here (issue 18). The order is ring.c's publication order. */
static inline void ring_commit(struct hv_ring *r, struct hv_record *slot)
{
    u64 head = r->head;
    slot->cpu = (u16)r->cpu;
    if (r->dropped != r->dropped_flagged) {     /* drops since the previous record: flag this one */
        slot->flags |= HV_REC_DROPPED_BEFORE;
        r->dropped_flagged = r->dropped;
    }
    __asm__ volatile("" ::: "memory");
    *(volatile u64 *)&slot->seq = head + 1;
    __asm__ volatile("" ::: "memory");
    __atomic_store_n(&r->head, head + 1, __ATOMIC_RELEASE);
}

#endif
