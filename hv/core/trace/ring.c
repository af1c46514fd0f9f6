/*
 * Single-producer exit ring. Only the owning CPU writes head, dropped and the records; only the host
 * writes tail and reader. Publication order (x86 stores are not reordered with other stores, SDM Vol. 3A
 * 10.2.3.2, so compiler barriers suffice): slot.seq = 0; fields; slot.seq = n; head = n. A reader copies
 * a slot and accepts it only if slot.seq reads n before and after the copy. Policies: abi.h struct hv_ring.
 * An exit builds its record in place (issue 18: no copy per exit): ring_reserve() at the exit's start
 * does the first step, the handler fills the fields, ring_commit() at its end does the last two.
 */
#include <hv/ring.h>

#define barrier() __asm__ volatile("" ::: "memory")

void ring_init(struct hv_ring *r, u32 cpu, u32 capacity, u32 policy, bool enabled, u64 wait_ticks)
{
    r->head = 0;
    r->tail = 0;
    r->reader = HV_READER_NONE;
    r->dropped = 0;
    r->dropped_flagged = 0;
    r->dropped_unread = 0;
    r->capacity = capacity;
    r->slot_mask = capacity - 1;
    /* every slot's cpu once: a ring's records are all its CPU's, and the producer never writes it again */
    for (u32 i = 0; i < capacity; i++)
        ring_records(r)[i].cpu = (u16)cpu;
    r->policy = policy;
    r->cpu = cpu;
    r->enabled = enabled;
    r->wait_ticks = wait_ticks;
    r->waited_ticks = 0;
    r->wait_expired = 0;
    r->room = enabled ? capacity : 0;               /* empty: every slot is free */
    r->overwrites = enabled && policy == HV_RING_OVERWRITE && !wait_ticks;
    r->drop_flag = 0;
}

static u32 ring_reader(const struct hv_ring *r)
{
    return __atomic_load_n(&r->reader, __ATOMIC_ACQUIRE);
}

/* Whether the waiting policy applies now: tracing waits for its reader, or for the attached one. */
static bool ring_waits(const struct hv_ring *r, u32 reader)
{
    return r->wait_ticks && !r->wait_expired && reader != HV_READER_LEFT;
}

/* Whether head may not pass tail + capacity now (else a full ring overwrites its oldest record). */
static bool ring_bounded(const struct hv_ring *r, u32 reader)
{
    return reader == HV_READER_ATTACHED || ring_waits(r, reader) || r->policy == HV_RING_DROP_NEWEST;
}

static bool ring_full(const struct hv_ring *r, u64 head)
{
    return head - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) >= r->capacity;
}

/*
 * The ring is full and bounded: wait (pause loop, no lock held) until the reader frees a slot, the
 * reader leaves, or wait_ticks pass (then never wait again). True when there is room to publish.
 */
static bool ring_wait(struct hv_ring *r, u64 head)
{
    u64 start = __builtin_ia32_rdtsc();
    for (;;) {
        u32 reader = ring_reader(r);
        if (!ring_bounded(r, reader) || !ring_full(r, head))
            break;
        u64 waited = __builtin_ia32_rdtsc() - start;
        if (!ring_waits(r, reader) || waited > r->wait_ticks) {
            if (ring_waits(r, reader)) {
                r->wait_expired = 1;
                r->overwrites = r->policy == HV_RING_OVERWRITE;     /* ring_bounded() without the wait */
            }
            r->waited_ticks += waited;
            return false;
        }
        __builtin_ia32_pause();
    }
    r->waited_ticks += __builtin_ia32_rdtsc() - start;
    return true;
}

struct hv_record *ring_reserve_slow(struct hv_ring *r)
{
    u64 head = r->head;
    u32 reader = ring_reader(r);
    if (ring_full(r, head) && ring_bounded(r, reader) && !ring_wait(r, head)) {
        r->dropped++;
        if (ring_reader(r) != HV_READER_ATTACHED)
            r->dropped_unread++;
        r->drop_flag = HV_REC_DROPPED_BEFORE;
        r->dropped_flagged = r->dropped;
        return 0;
    }
    /* The slots free now (tail only grows) but the one this record takes; none if it overwrites. */
    u64 used = head - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
    r->room = used < r->capacity ? r->capacity - (u32)used - 1 : 0;
    return ring_slot_rewrite(r, head);
}

bool ring_publish(struct hv_ring *r, const struct hv_record *rec)
{
    struct hv_record *slot = ring_reserve(r);
    if (!slot)
        return false;
    static const u32 words = sizeof(struct hv_record) / sizeof(u64);
    volatile u64 *dst = (volatile u64 *)slot;
    const u64 *src = (const u64 *)rec;
#pragma GCC unroll 16
    for (u32 i = 1; i < words; i++)             /* seq (word 0) is ring_commit's */
        dst[i] = src[i];
    slot->cpu = (u16)r->cpu;                    /* the slot's own, whatever rec held */
    ring_commit(r, slot);
    return true;
}
