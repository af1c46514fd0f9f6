/*
 * The exit ring's producer (hv/core/trace/ring.c, hv/include/hv/ring.h) on a plain buffer, one step at a
 * time, with the host's side (tail, reader) written by the test: what the inline exit path relies on
 * (issue 18). ring_reserve's room count is a SUB on memory whose carry sends it to the slow path: a ring
 * with no room left must stay at 0, never wrap. A slot's cpu is written once, by ring_init, and its
 * 'reserved' byte never (trace_exit_fill writes neither). The drop flag lands on exactly the first
 * record published after a drop. Record n sits in slot (n - 1) & slot_mask.
 */
#include <stdlib.h>
#include <string.h>

#include <hv/ring.h>

#include "check.h"

enum { CAP = 8, CPU = 3 };

static struct hv_ring *ring_new(u32 policy, bool enabled)
{
    struct hv_ring *r = calloc(1, ring_bytes(CAP));
    if (!r)
        abort();
    ring_init(r, CPU, CAP, policy, enabled, 0);
    return r;
}

/* One exit: reserve, fill (arg0 = n, every field but seq, cpu and the drop flag), commit. NULL: not published. */
static struct hv_record *publish(struct hv_ring *r, u64 n)
{
    struct hv_record *slot = ring_reserve(r);
    if (!slot)
        return NULL;
    slot->tsc = n;
    slot->kind = 1;
    slot->flags = 0;
    slot->reason = 10;
    slot->arg0 = n;
    ring_commit(r, slot);
    return slot;
}

static void check_init(void)
{
    struct hv_ring *r = ring_new(HV_RING_DROP_NEWEST, true);
    CHECK(r->slot_mask == CAP - 1, "slot_mask %u", r->slot_mask);
    CHECK(r->room == CAP, "room %u", r->room);
    for (u32 i = 0; i < CAP; i++)
        CHECK(ring_records(r)[i].cpu == CPU, "slot %u cpu %u", i, ring_records(r)[i].cpu);
    free(r);
}

/* DROP_NEWEST with nobody reading: CAP records, then drops; room stays 0 through them. */
static void check_drop_newest(void)
{
    struct hv_ring *r = ring_new(HV_RING_DROP_NEWEST, true);
    for (u64 n = 1; n <= CAP; n++) {
        struct hv_record *slot = publish(r, n);
        CHECK(slot == &ring_records(r)[(n - 1) & (CAP - 1)], "record %llu in its slot", (unsigned long long)n);
        CHECK(slot && slot->seq == n && slot->cpu == CPU && slot->flags == 0 && slot->reserved == 0, "record %llu published",
              (unsigned long long)n);
        CHECK(r->room == CAP - n, "room %u after %llu", r->room, (unsigned long long)n);
    }
    for (int i = 0; i < 3; i++) {
        CHECK(publish(r, 100 + (u64)i) == NULL, "full: dropped");
        CHECK(r->room == 0, "room %u after a drop (wrapped?)", r->room);
    }
    CHECK(r->dropped == 3 && r->drop_flag == HV_REC_DROPPED_BEFORE && r->head == CAP, "dropped %llu flag %u head %llu",
          (unsigned long long)r->dropped, r->drop_flag, (unsigned long long)r->head);
    /* the reader frees two slots: the next record takes one and is flagged; one slot is left */
    r->tail = 2;
    struct hv_record *slot = publish(r, CAP + 1);
    CHECK(slot == &ring_records(r)[0] && slot->seq == CAP + 1, "record after the drops in slot 0");
    CHECK(slot && slot->flags == HV_REC_DROPPED_BEFORE && slot->cpu == CPU, "flagged, cpu kept");
    CHECK(r->drop_flag == 0 && r->room == 1, "flag consumed (%u), room %u", r->drop_flag, r->room);
    slot = publish(r, CAP + 2);
    CHECK(slot == &ring_records(r)[1] && slot->flags == 0, "the next record is not flagged");
    CHECK(r->room == 0 && publish(r, CAP + 3) == NULL && r->room == 0, "full again: dropped, room 0");
    free(r);
}

/* OVERWRITE with nobody reading: past CAP the oldest slot is rewritten without a look at tail; room stays 0. */
static void check_overwrite(void)
{
    struct hv_ring *r = ring_new(HV_RING_OVERWRITE, true);
    for (u64 n = 1; n <= 3 * CAP + 1; n++) {
        struct hv_record *slot = publish(r, n);
        CHECK(slot == &ring_records(r)[(n - 1) & (CAP - 1)], "record %llu in its slot", (unsigned long long)n);
        CHECK(slot && slot->seq == n && slot->arg0 == n && slot->cpu == CPU && slot->flags == 0,
              "record %llu overwrote its slot", (unsigned long long)n);
        CHECK(r->room == (n < CAP ? CAP - n : 0), "room %u after %llu", r->room, (unsigned long long)n);
    }
    CHECK(r->dropped == 0 && r->head == 3 * CAP + 1, "no drops, head %llu", (unsigned long long)r->head);
    /* a lossless reader attaches: the full ring no longer overwrites (no wait configured: it drops) */
    r->reader = HV_READER_ATTACHED;
    r->tail = r->head;
    struct hv_record *slot = publish(r, 1000);
    CHECK(slot && slot->seq == 3 * CAP + 2 && r->room == CAP - 1, "room from the reader's tail: %u", r->room);
    free(r);
}

/* trace=0: nothing is reserved, and room stays 0. */
static void check_disabled(void)
{
    struct hv_ring *r = ring_new(HV_RING_OVERWRITE, false);
    CHECK(r->room == 0, "room %u", r->room);
    for (int i = 0; i < 3; i++)
        CHECK(ring_reserve(r) == NULL && r->room == 0 && r->head == 0, "tracing off: no slot, room %u", r->room);
    free(r);
}

int main(void)
{
    check_init();
    check_drop_newest();
    check_overwrite();
    check_disabled();
    return check_summary();
}
