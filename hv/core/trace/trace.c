/* The core trace API: per-kind counters and the per-CPU exit rings. */
#include <hv/abi.h>
#include <hv/breaks.h>
#include <hv/cmdline.h>
#include <hv/console.h>
#include <hv/discovery.h>
#include <hv/frame.h>
#include <hv/memmap.h>
#include <hv/panic.h>
#include <hv/percpu.h>
#include <hv/pool.h>
#include <hv/ring.h>
#include <hv/timer.h>
#include <hv/trace.h>
#include <hv/x86.h>

/*
 * Ring size rule (ring=auto, the default): all rings together take 1/HV_RING_RAM_SHARE of usable RAM,
 * split evenly over the CPUs, rounded down to a power of two and kept within
 * [HV_RING_DEFAULT_CAPACITY, HV_RING_MAX_CAPACITY] records. 64 MiB and 2 CPUs: 8192 records per CPU.
 */
static u32 ring_auto_capacity(u64 usable_bytes, u32 cpus)
{
    u64 per_cpu = usable_bytes / HV_RING_RAM_SHARE / (cpus ? cpus : 1) / HV_RECORD_SIZE;
    u32 cap = HV_RING_DEFAULT_CAPACITY;
    while (cap < HV_RING_MAX_CAPACITY && (u64)cap * 2 <= per_cpu)
        cap *= 2;
    return cap;
}

/*
 * Every CPU's ring, allocated and registered when the first CPU is prepared (the back end is chosen,
 * so hosts see hv_trace.vendor with the rings), before any CPU is virtualized: a host reader attaches
 * once every ring is in the discovery header, and CPUs are virtualized one after the other
 * (core/cpu/virt.c), so a CPU whose ring waits for its reader (ring_wait) must not be waiting before
 * the later CPUs' rings exist.
 */
static void trace_init_rings(u32 cpus)
{
    u32 cap = hv_options.ring_capacity ? hv_options.ring_capacity
                                       : ring_auto_capacity(hv_memmap.usable_bytes, cpus);
    u64 wait_ticks = (u64)hv_options.ring_wait_s * 1000 * tsc_khz();
    char why[96] = "ring=";
    if (!hv_options.ring_capacity)
        snprintf(why, sizeof(why), "1/%u of %lu MiB usable RAM over %u CPUs", HV_RING_RAM_SHARE,
                 hv_memmap.usable_bytes >> 20, cpus);
    printk("trace: rings of %u records (%lu KiB) per CPU (%s); a full ring %s%s\n", cap,
           ring_bytes(cap) / 1024, why, hv_options.ring_wait_s ? "waits for its reader, then " : "",
           hv_options.ring_policy == HV_RING_OVERWRITE ? "overwrites the oldest" : "drops the newest");
    for (u32 cpu = 0; cpu < cpus; cpu++) {
        struct hv_ring *r = pool_alloc(ALIGN_UP(ring_bytes(cap), PAGE_SIZE) / PAGE_SIZE, PAGE_SIZE, "exit ring");
        ring_init(r, cpu, cap, hv_options.ring_policy, hv_options.trace, wait_ticks);
        hv_trace.ring[cpu] = (u64)r;
    }
    hv_trace.record_size = HV_RECORD_SIZE;
    hv_trace.ring_capacity = cap;
}

void trace_init_cpu(struct percpu *pc)
{
    static bool rings_ready;    /* CPUs are prepared one after the other (virt.c): no race */
    if (!rings_ready) {
        trace_init_rings(cpu_count);
        rings_ready = true;
    }
    pc->ring = (struct hv_ring *)hv_trace.ring[pc->index];
    trace_spare[pc->index].cpu = (u16)pc->index;    /* its slots' cpu is ring_init's (trace_exit_fill) */
    pc->e9_frames = hv_options.trace_e9;
    break_init_cpu(pc);
}

struct hv_record trace_spare[HV_MAX_CPUS];

/* Publish the exit's record (and frame) and report a break hit (brk >= 0: the entry that stops). */
static inline void trace_publish(struct percpu *pc, struct hv_record *rec, int brk)
{
    if (brk >= 0)
        rec->flags |= HV_REC_BREAK_HIT;
    if (rec == pc->rec_building) {
        ring_commit(pc->ring, rec);             /* rec->seq is now the ring's: what hv_break_hit() shows */
        pc->rec_building = 0;                   /* published once, even if a dump reports it again */
    }
    if (hv_options.trace_e9) {
        struct hv_record f = *rec;              /* the published slot stays as the reader checked it */
        f.seq = 0;                              /* the frame stream numbers every exit, dropped or not */
        for (u32 k = 0; k < HV_EXIT_KIND_COUNT; k++)
            f.seq += pc->exit_kinds[k];
        frame_emit(&f);
        if (brk >= 0)
            break_hit(pc, brk, &f);
        return;
    }
    if (brk >= 0)
        break_hit(pc, brk, rec);
}

/*
 * trace_exit when an armed break may match (or this CPU must compile a new table): its own function,
 * reached by a tail jump, so that the registers the match and hit paths need cost nothing on the path
 * with nothing armed or with a condition that does not hold (issue 16).
 */
static __attribute__((noinline)) void trace_exit_armed(struct percpu *pc, struct hv_record *rec)
{
    trace_publish(pc, rec, break_match_armed(pc, rec));
}

void trace_exit_full(struct percpu *pc, struct hv_record *rec)
{
    if (break_armed() && !break_surely_misses(pc, rec)) {
        trace_exit_armed(pc, rec);
        return;
    }
    trace_publish(pc, rec, -1);
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
