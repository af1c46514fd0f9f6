/*
 * Core trace API: every VM exit of every back end is reported here once, after it is handled, with
 * its vendor-neutral kind, native reason and the operands that make it meaningful. It counts the exit
 * per kind and publishes a record into the CPU's ring (core/trace/ring.c).
 */
#ifndef HV_TRACE_H
#define HV_TRACE_H

#include <hv/abi.h>
#include <hv/breaks.h>
#include <hv/cmdline.h>
#include <hv/percpu.h>
#include <hv/ring.h>

/*
 * Each CPU's record in the making: its ring's reserved slot (percpu.rec_building), or trace_spare[]
 * when the ring takes none (tracing off, a full ring dropping). Only that CPU touches its entries.
 */
extern struct hv_record trace_spare[HV_MAX_CPUS];

/*
 * An exit handler's first step: the exit's record, holding the exit's TSC (the start of its handling
 * time, abi.h), its CPU, native reason, qualification and RIP, and the guest's CR3 at the exit (what
 * identifies its address space); every other field zero. It is built in place in the CPU's ring slot
 * (ring_reserve) when the ring takes one, and published by trace_exit(): the handler may write it
 * until then, never after.
 */
#define trace_exit_begin(pc, guest_cr3, reason, qual, rip) trace_exit_begin_as(pc, guest_cr3, reason, qual, rip, 0, 0, 0, 0)
/*
 * trace_exit_begin in two steps, for a fast path (exit_fast.h) that reads the fields' values only once
 * the record has its place and TSC (fewer values live at once): trace_exit_slot, then trace_exit_fill.
 * The TSC is taken after the reservation: a wait for the reader is not the exit's handling time.
 */
static inline struct hv_record *trace_exit_slot(struct percpu *pc)
{
    struct hv_record *slot = ring_reserve(pc->ring);     /* every CPU has its ring before its first exit (virt.c) */
    struct hv_record *rec = slot ? slot : &trace_spare[pc->index];
    pc->rec_building = slot;
    rec->tsc = __builtin_ia32_rdtsc();
    return rec;
}
/*
 * Every other field, each written once (fields a fast path knows at once among them). Field by field,
 * not a compound literal: that is a REP STOSQ over the whole record first (ten iterations). Not here:
 * seq, the ring's (0 in a reserved slot, never written in the spare); cpu, the slot's own (ring_init
 * writes it into every slot of the CPU's ring, trace_init_cpu into its spare); 'reserved', 0 in the
 * rings' zeroed memory and never written; tsc_resume, vcpu_exit_resume's (exit_fast.h), or 0 from
 * trace_exit_unresumed: every record is published by one of the two.
 */
static inline void trace_exit_fill(struct hv_record *rec, u64 guest_cr3, u16 reason, u64 qual,
                                   u64 rip, u8 kind, u8 insn_len, u64 arg0, u64 arg1)
{
    rec->kind = kind;
    rec->flags = 0;
    rec->reason = reason;
    rec->insn_len = insn_len;
    rec->qual = qual;
    rec->rip = rip;
    rec->gpa = 0;
    rec->arg0 = arg0;
    rec->arg1 = arg1;
    rec->cr3 = guest_cr3;
    _Static_assert(__builtin_offsetof(struct hv_record, cr3) + 8 == sizeof(struct hv_record),
                   "trace_exit_fill knows every field of the record");
}
static inline struct hv_record *trace_exit_begin_as(struct percpu *pc, u64 guest_cr3, u16 reason, u64 qual, u64 rip,
                                                    u8 kind, u8 insn_len, u64 arg0, u64 arg1)
{
    struct hv_record *rec = trace_exit_slot(pc);
    trace_exit_fill(rec, guest_cr3, reason, qual, rip, kind, insn_len, arg0, arg1);
    return rec;
}
/* trace_exit's every other case: a break that may match (or a table to compile), the port-0xE9 stream. */
void trace_exit_full(struct percpu *pc, struct hv_record *rec);
/*
 * The exit is handled: count it and publish its record (the ring's slot: ring_commit; the spare is
 * not published), or, when an armed break may match it or frames are streamed, trace_exit_full().
 * Inline: on every exit (issue 18), the usual case and a break that surely misses need no call. 'fast'
 * (a constant): a fast path's exit (exit_fast.h), taken only while pc->exit_slow is clear: no frame stream.
 * 'armed': break_armed() as the caller read it once (VT-x's fast path completes its GPR frame for the
 * breaks by the same reading: vmx/exit_fast.c).
 */
static inline __attribute__((always_inline)) void trace_exit_as(struct percpu *pc, struct hv_record *rec, u8 kind,
                                                                bool fast, bool armed)
{
    pc->exit_kinds[kind < HV_EXIT_KIND_COUNT ? kind : HV_EXIT_OTHER]++;
    if (__builtin_expect((armed && !break_surely_misses_as(pc, rec, kind)) || (!fast && pc->e9_frames), 0)) {
        trace_exit_full(pc, rec);
        return;
    }
    if (__builtin_expect(rec == pc->rec_building, 1)) {    /* else the spare: tracing off, or the ring dropped it */
        ring_commit(pc->ring, rec);
        pc->rec_building = 0;                   /* published once, even if a dump reports it again */
    }
}
/* trace_exit_as() with the kind the record holds; a fast path passes its constant kind. */
#define trace_exit(pc, rec) trace_exit_as(pc, rec, (rec)->kind, false, break_armed())
/* The record of an exit after which the guest does not resume (a fatal exit's dump): tsc_resume 0 (abi.h). */
#define trace_exit_unresumed(pc, rec) ((rec)->tsc_resume = 0, trace_exit(pc, rec))
/* Allocate and register this CPU's ring (capacity from the command line). */
void trace_init_cpu(struct percpu *pc);
const char *exit_kind_name(u32 kind);

#endif
