/*
 * Per-logical-processor state: one structure per CPU, reached through GS base (gs:0 is the self
 * pointer). Each CPU has its own stack, IST stack, GDT, TSS and IDT: a TSS cannot be shared because
 * LTR marks its descriptor busy (and VMX host state needs a nonzero TR per CPU).
 */
#ifndef HV_PERCPU_H
#define HV_PERCPU_H

#include <hv/abi.h>
#include <hv/break_cache.h>
#include <hv/types.h>

#define CPU_STACK_PAGES 4
#define CPU_IST_PAGES   2

#define GDT_CODE64 0x08
#define GDT_DATA   0x10
#define GDT_TSS    0x18
#define GDT_USER_DATA 0x28     /* DPL 3 (| 3 for the selector) */
#define GDT_USER_CODE64 0x30
#define GDT_ENTRIES 7       /* null, code, data, TSS (two slots), user data, user code */

/* 64-bit TSS (SDM Vol. 3A 8.7, Figure 8-11). */
struct tss64 {
    u32 reserved0;
    u64 rsp[3];
    u64 reserved1;
    u64 ist[7];
    u64 reserved2;
    u16 reserved3;
    u16 iomap_base;
} __packed;
_Static_assert(sizeof(struct tss64) == 104, "TSS layout");

/* 64-bit interrupt gate (SDM Vol. 3A 7.14.1, Figure 7-8). */
struct idt_gate {
    u16 offset_lo;
    u16 selector;
    u8 ist;
    u8 type_attr;
    u16 offset_mid;
    u32 offset_hi;
    u32 reserved;
} __packed;
_Static_assert(sizeof(struct idt_gate) == 16, "IDT gate layout");

typedef void (*cpu_work_fn)(void);

/* Expected-fault recovery for one instruction: see fixup.h. */
struct fixup {
    u64 rip;        /* where to resume if the guarded instruction faults; 0 = not armed */
    u64 fault;      /* vector + 1 of the fault taken, 0 if none */
    u64 error;      /* its error code */
    u64 fault_rip;  /* where it was raised */
    u64 rsp;        /* nonzero: resume at CPL 0 on this stack (the fault came from CPL 3) */
};

struct percpu {
    struct percpu *self;            /* gs:0 */
    u32 index;                      /* logical index, 0 = BSP */
    u32 apic_id;
    u64 stack_top;
    u64 ist_top;
    volatile u32 online;
    volatile u32 console_depth;     /* >0 while this CPU writes the console */
    cpu_work_fn volatile work;      /* set by the BSP, run by an idle AP */
    volatile u32 work_done;
    void *vendor;                   /* the back end's per-CPU state (struct vmx_cpu, ...) */
    volatile u32 in_root;           /* 1 while this CPU runs the exit handler (host context) */
    volatile u32 launched;          /* the blue pill happened: outside the exit handler we are the guest */
    struct fixup fixup[2];          /* [0] guest context, [1] host context */
    u64 exit_kinds[HV_EXIT_KIND_COUNT];   /* exits per vendor-neutral kind (trace.c); their sum is every exit */
    u64 *exit_regs;                 /* the guest GPR frame of the exit being handled (16 slots) */
    struct hv_ring *ring;           /* this CPU's exit ring (abi.h), listed in the discovery header */
    struct hv_record *rec_building; /* the ring slot this exit's record is built in, until published (trace.h) */
    struct hv_snapshot *snapshot;   /* this CPU's snapshot area (abi.h), listed in the discovery header */
    /*
     * What keeps this CPU's exits off the fast paths (exit_fast.h): a byte each, so that one load of
     * exit_slow tests them all (issue 18). Each is written where its state changes, by this CPU or
     * (stage2_stale, dr_armed) by the CPU that changed the shared state.
     */
    union {
        struct {
            volatile u8 nmi_pending;    /* an NMI for the guest that arrived while it could not take it */
            volatile u8 stage2_stale;   /* stage 2 was retyped since this CPU last flushed it (msr_emul.h) */
            volatile u8 apic_stepping;  /* this CPU single-steps an xAPIC access (apic_step.h) */
            volatile u8 dr_armed;       /* the gdb stub uses debug-register slots (gdbstub_dr7 != 0) */
            u8 e9_frames;               /* trace_e9=1: every record is streamed too (trace.c) */
            volatile u8 guest_halted;   /* the guest runs its HLT for real, kept across exits (svm/halt.c; VT-x
                                           keeps it in the VMCS activity state, vmx/halt.c) */
        };
        volatile u64 exit_slow;
    };
    volatile u32 kicked;            /* an NMI IPI the hypervisor sent to bring this CPU out of the guest */
    bool dr_swapped;                /* the gdb stub's DR0-DR3/DR7 loaded for this exit, the guest's in guest_dr */
    u8 gdb_polls_left;              /* exits until the gdb stub looks at its UART again (wraps: every 256th) */
    u64 guest_dr[5];                /* DR0-DR3 and DR6 of the guest while dr_swapped (core/gdbstub/debugregs.c) */
    const char *end_reason;         /* set by a handler that ends the run: trace_exit() records the exit, then ends */
    u32 end_status;
    bool end_has_guest_code;        /* the status line also carries end_guest_code (guest_debug_exit) */
    u32 end_guest_code;
    volatile u32 parked;            /* in park_wait (park.h): the wake-up IPI and NMIs are handled there */
    volatile u32 park_idle;         /* 1: about to sleep or asleep in park_wait; a waker that takes it sends the IPI */
    volatile u32 park_woken;        /* the wake-up IPI arrived */
    u64 park_checks;                /* times park_wait looked at its word: 1 + each HLT it came back from */
    struct brk_cache breaks;        /* the exit-break table as this CPU compiled it (breaks.h break_match) */
    u64 gdt[GDT_ENTRIES] __attribute__((aligned(16)));
    struct tss64 tss __attribute__((aligned(16)));
    struct idt_gate idt[256] __attribute__((aligned(16)));
};
_Static_assert(sizeof(struct percpu) <= 2 * 4096, "percpu fits its two pool pages");

static inline struct percpu *this_cpu(void)
{
    struct percpu *p;
    __asm__ volatile("movq %%gs:0, %0" : "=r"(p));
    return p;
}

/*
 * The hypervisor kicks a CPU out of the guest with an NMI IPI (a gdb stop, an xAPIC step's hold, INIT
 * to a running CPU); the NMI's arrival consumes percpu.kicked (vcpu_nmi_arrived). One NMI in flight
 * serves every kick made before it arrives: a second NMI would find the flag consumed by the first
 * and reach the guest as an NMI nobody sent it (NMIs do not queue, SDM Vol. 3A 6.7.1). Marks t
 * kicked; true when the caller must send the NMI (none of the hypervisor's is in flight to t).
 */
static inline bool percpu_kick_needs_nmi(struct percpu *t)
{
    return !__atomic_exchange_n(&t->kicked, 1, __ATOMIC_ACQ_REL);
}

extern struct percpu *cpus[HV_MAX_CPUS];
extern u32 cpu_count;

/* Load this CPU's GDT, TSS, IDT and GS base. */
void cpu_init_local(struct percpu *pc);
struct percpu *cpu_bsp_init(void);

#endif
