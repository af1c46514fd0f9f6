/*
 * The exit-record producer (core/trace/ring.c): one lock-free single-producer ring per CPU (abi.h struct
 * hv_ring). Freestanding and host-compilable: tests/native builds it to check the publication protocol.
 */
#ifndef HV_RING_H
#define HV_RING_H

#include <hv/abi.h>
#include <hv/types.h>
#include <hv/x86.h>

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
 * (seq 0); the caller fills every field but seq, the drop flag and cpu (ring_init wrote the ring's CPU
 * into every slot); ring_commit publishes it. At most one reserved slot per ring; a slot reserved again
 * without a commit is simply rewritten.
 */
static inline struct hv_record *ring_slot_rewrite(struct hv_ring *r, u64 head)
{
    struct hv_record *slot = &ring_records(r)[head & r->slot_mask];
    *(volatile u64 *)&slot->seq = 0;            /* seq: the slot is being rewritten */
    __asm__ volatile("" ::: "memory");          /* before any field (ring.c's publication order) */
    return slot;
}
/* ring_reserve's every other case (out of line): a look at tail and reader, a wait, a drop. */
struct hv_record *ring_reserve_slow(struct hv_ring *r);
/*
 * Inline: on every exit (issue 18). A ring with room left from the producer's last look at tail
 * ('room': tail only grows, so that much is still free) takes the slot without looking again; a full
 * one that nobody reads overwrites its oldest record ('overwrites': the usual state without a reader)
 * after one look at the reader.
 */
static inline struct hv_record *ring_reserve(struct hv_ring *r)
{
    /* room-- unless it is 0, as one SUB on memory and a jump on its borrow (GCC's C for it takes five) */
    __asm__ goto("subl $1, %0\n\tjc %l[none]" : "+m"(r->room) : : "cc" : none);
    return ring_slot_rewrite(r, r->head);
none: __attribute__((cold));
    r->room = 0;                                /* the SUB wrapped it */
    /* a full ring nobody reads, overwriting: every exit of a plain run once the ring has filled */
    if (!(x86_nonzero32(&r->overwrites) && x86_unequal32(&r->reader, HV_READER_ATTACHED)))
        return __atomic_load_n(&r->enabled, __ATOMIC_RELAXED) ? ring_reserve_slow(r) : 0;   /* trace=0: no call */
    return ring_slot_rewrite(r, r->head);
}
/* Inline: every traced exit ends here (issue 18). The order is ring.c's publication order. */
static inline void ring_commit(struct hv_ring *r, struct hv_record *slot)
{
    u64 head = r->head;
    if (x86_nonzero32(&r->drop_flag))          /* drops since the previous record: flag this one */
        goto dropped;
publish:
    __asm__ volatile("" ::: "memory");
    *(volatile u64 *)&slot->seq = head + 1;
    __asm__ volatile("" ::: "memory");
    __atomic_store_n(&r->head, head + 1, __ATOMIC_RELEASE);
    return;
dropped: __attribute__((cold));
    slot->flags |= (u8)r->drop_flag;
    r->drop_flag = 0;
    goto publish;
}

#endif
