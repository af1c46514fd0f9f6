/*
 * Single-producer exit ring. Only the owning CPU writes head, dropped and the records; only the host
 * writes tail. Publication order (x86 stores are not reordered with other stores, SDM Vol. 3A 10.2.3.2,
 * so compiler barriers suffice): slot.seq = 0; fields; slot.seq = n; head = n. A reader copies a slot
 * and accepts it only if slot.seq reads n before and after the copy.
 */
#include <hv/ring.h>

#define barrier() __asm__ volatile("" ::: "memory")

void ring_init(struct hv_ring *r, u32 cpu, u32 capacity, u32 policy, bool enabled)
{
    r->head = 0;
    r->tail = 0;
    r->dropped = 0;
    r->dropped_flagged = 0;
    r->capacity = capacity;
    r->policy = policy;
    r->cpu = cpu;
    r->enabled = enabled;
}

bool ring_publish(struct hv_ring *r, const struct hv_record *rec)
{
    if (!__atomic_load_n(&r->enabled, __ATOMIC_RELAXED))
        return false;
    u64 head = r->head;
    if (r->policy == HV_RING_DROP_NEWEST && head - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) >= r->capacity) {
        r->dropped++;
        return false;
    }
    static const u32 words = sizeof(struct hv_record) / sizeof(u64);
    struct hv_record *slot = &ring_records(r)[head & (r->capacity - 1)];
    volatile u64 *dst = (volatile u64 *)slot;
    const u64 *src = (const u64 *)rec;
    dst[0] = 0;                                 /* seq: the slot is being rewritten */
    barrier();
    for (u32 i = 1; i < words; i++)
        dst[i] = src[i];
    slot->cpu = (u16)r->cpu;
    if (r->dropped != r->dropped_flagged) {     /* drops since the previous record: flag this one */
        slot->flags |= HV_REC_DROPPED_BEFORE;
        r->dropped_flagged = r->dropped;
    }
    barrier();
    dst[0] = head + 1;
    barrier();
    __atomic_store_n(&r->head, head + 1, __ATOMIC_RELEASE);
    return true;
}
