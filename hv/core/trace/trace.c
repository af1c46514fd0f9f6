/* The core trace API: per-kind counters and the per-CPU exit rings. */
#include <hv/abi.h>
#include <hv/breaks.h>
#include <hv/cmdline.h>
#include <hv/discovery.h>
#include <hv/frame.h>
#include <hv/panic.h>
#include <hv/pool.h>
#include <hv/ring.h>
#include <hv/trace.h>
#include <hv/x86.h>

void trace_init_cpu(struct percpu *pc)
{
    u32 cap = hv_options.ring_capacity;
    pc->ring = pool_alloc(ALIGN_UP(ring_bytes(cap), PAGE_SIZE) / PAGE_SIZE, PAGE_SIZE, "exit ring");
    ring_init(pc->ring, pc->index, cap, hv_options.ring_policy, hv_options.trace);
    hv_trace.ring[pc->index] = (u64)pc->ring;
    hv_trace.record_size = HV_RECORD_SIZE;
    hv_trace.ring_capacity = cap;
}

void trace_exit(struct percpu *pc, struct hv_record *rec)
{
    pc->exit_kinds[rec->kind < HV_EXIT_KIND_COUNT ? rec->kind : HV_EXIT_OTHER]++;
    pc->exits_total++;
    rec->cpu = (u16)pc->index;
    int brk = break_match(pc, rec);
    if (brk >= 0)
        rec->flags |= HV_REC_BREAK_HIT;
    if (pc->ring) {
        rec->tsc = rdtsc();
        if (ring_publish(pc->ring, rec))
            rec->seq = pc->ring->head;      /* what hv_break_hit() hands gdb matches the ring's copy */
    }
    if (hv_options.trace_e9) {
        rec->seq = pc->exits_total;     /* the frame stream numbers every exit, dropped or not */
        frame_emit(rec);
    }
    if (brk >= 0)
        break_hit(pc, brk, rec);
}

static const char *const kind_names[HV_EXIT_KIND_COUNT] = {
    [HV_EXIT_OTHER] = "OTHER", [HV_EXIT_CPUID] = "CPUID", [HV_EXIT_MSR_READ] = "MSR_READ",
    [HV_EXIT_MSR_WRITE] = "MSR_WRITE", [HV_EXIT_CR_ACCESS] = "CR_ACCESS", [HV_EXIT_VMCALL] = "VMCALL",
    [HV_EXIT_INVD] = "INVD", [HV_EXIT_EXCEPTION] = "EXCEPTION", [HV_EXIT_STAGE2_FAULT] = "STAGE2_FAULT",
    [HV_EXIT_IO] = "IO", [HV_EXIT_HLT] = "HLT", [HV_EXIT_XSETBV] = "XSETBV", [HV_EXIT_INIT] = "INIT",
    [HV_EXIT_SIPI] = "SIPI", [HV_EXIT_TRIPLE_FAULT] = "TRIPLE_FAULT", [HV_EXIT_ENTRY_FAILURE] = "ENTRY_FAILURE",
    [HV_EXIT_VIRT_INSN] = "VIRT_INSN",
};

const char *exit_kind_name(u32 kind)
{
    return kind < HV_EXIT_KIND_COUNT ? kind_names[kind] : "?";
}
