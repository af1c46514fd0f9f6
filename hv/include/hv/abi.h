/*
 * hvtrace ABI: the only contract between the hypervisor (C) and the host tools (Python).
 *
 * Python mirrors every definition here in hvtrace/abi.py; tests/unit/test_abi_mirror.py compiles
 * this header with the host compiler and checks each value against the mirror. Change both together
 * and bump HV_ABI_VERSION on any incompatible change.
 *
 * Must stay includable by the host compiler: no kernel headers, fixed-width types only.
 */
#ifndef HV_ABI_H
#define HV_ABI_H

#include <stdint.h>

#define HV_ABI_VERSION 2   /* 2: records grew tsc_resume and cr3 (80 bytes); hosts still read v1 files */

/* Most logical processors the hypervisor brings up; more in the MADT is a reported failure. */
#define HV_MAX_CPUS 64

/*
 * Final status line. The hypervisor ends every run by printing exactly one line
 *     HVTRACE STATUS code=<decimal> result=<pass|fail> reason=<token>[ guest_code=<decimal>]
 * on every console, then leaves the emulator: QEMU through isa-debug-exit at HV_DEBUG_EXIT_PORT
 * (QEMU's own exit status is then (code << 1) | 1), Bochs through a magic breakpoint (xchg bx,bx)
 * after which the debugger script quits. 'code' is always the hypervisor's own status. A loaded
 * guest that writes the isa-debug-exit ports itself ends the run with reason=guest_debug_exit, the
 * hypervisor's code (0: it did its job) and the guest's value, as written, in guest_code.
 */
#define HV_STATUS_PREFIX "HVTRACE STATUS"
#define HV_DEBUG_EXIT_PORT 0xf4
#define HV_DEBUG_EXIT_SIZE 4    /* ports from HV_DEBUG_EXIT_PORT (QEMU's iosize=4) */

/* Status codes: 0 is success; every failure has its own code below 64. */
#define HV_STATUS_PASS            0
#define HV_STATUS_FAIL            1  /* generic failure (a check failed) */
#define HV_STATUS_EXCEPTION       2  /* a CPU took an exception in the hypervisor */
#define HV_STATUS_AP_TIMEOUT      3  /* an application processor did not come online in time */
#define HV_STATUS_POOL_EXHAUSTED  4  /* the physical page pool ran out */
#define HV_STATUS_BAD_BOOTINFO    5  /* multiboot information missing or unusable */
#define HV_STATUS_NO_ACPI         6  /* no RSDP / RSDT / MADT found */
#define HV_STATUS_TOO_MANY_CPUS   7  /* the MADT lists more than HV_MAX_CPUS processors */
#define HV_STATUS_BAD_CMDLINE     8  /* unknown or malformed option on the kernel command line */
#define HV_STATUS_GUEST_LOAD      9  /* the guest kernel module cannot be loaded (format, placement) */
#define HV_STATUS_MAX            63

/*
 * Vendor-neutral exit kinds: every VM exit is counted and traced under one of these, next to the
 * native reason (VMX basic exit reason or SVM exit code).
 */
#define HV_EXIT_OTHER          0
#define HV_EXIT_CPUID          1
#define HV_EXIT_MSR_READ       2
#define HV_EXIT_MSR_WRITE      3
#define HV_EXIT_CR_ACCESS      4
#define HV_EXIT_VMCALL         5   /* VMCALL / VMMCALL */
#define HV_EXIT_INVD           6   /* INVD / WBINVD */
#define HV_EXIT_EXCEPTION      7
#define HV_EXIT_STAGE2_FAULT   8   /* EPT violation / #NPF */
#define HV_EXIT_IO             9
#define HV_EXIT_HLT           10
#define HV_EXIT_XSETBV        11
#define HV_EXIT_INIT          12
#define HV_EXIT_SIPI          13
#define HV_EXIT_TRIPLE_FAULT  14
#define HV_EXIT_ENTRY_FAILURE 15
#define HV_EXIT_VIRT_INSN     16   /* the guest tried a VMX / SVM instruction */
#define HV_EXIT_KIND_COUNT    17

/*
 * Hypercalls (VMCALL / VMMCALL from CPL 0; from CPL > 0 they raise #UD in the guest).
 * RAX = function, RBX = argument; the result comes back in RAX.
 */
#define HV_HC_PING        0   /* returns HV_HC_PING_REPLY */
#define HV_HC_EXIT_COUNT  1   /* RBX = exit kind: exits of that kind on this CPU so far */
#define HV_HC_SNAPSHOT    2   /* snapshot this CPU's VMCS / VMCB now; returns the field count */
#define HV_HC_GUEST_EXIT  3   /* RBX = status code: a loaded guest is done; the run ends with that status */
#define HV_HC_PING_REPLY  0x48565452   /* "HVTR" */
#define HV_HC_UNKNOWN     (~0ull)      /* unknown function */

/* CPUID hypervisor leaves: 0x40000000 returns the highest leaf in EAX and this signature in EBX:ECX:EDX. */
#define HV_CPUID_SIGNATURE "hvtrace\0\0\0\0\0"
#define HV_CPUID_MAX_LEAF  0x40000001  /* 0x40000001: EAX = HV_ABI_VERSION */

/*
 * The CPUID storm (storm=1, boot/guests/storm.c) executes CPUID with R15 = HV_STORM_MARK and R12 = its
 * round: registers CPUID does not use, that VT-x's exit stub leaves to its C (vmx/exit_fast.c), for
 * exit-break conditions to test.
 */
#define HV_STORM_MARK 0x53544f524d523135ull   /* "51RMROTS" */

/* Which back end runs (discovery header 'vendor', snapshot 'vendor'). */
#define HV_VENDOR_NONE 0
#define HV_VENDOR_VMX  1
#define HV_VENDOR_SVM  2

/*
 * Snapshot of one CPU's control structure, taken by the hypervisor on request (HV_HC_SNAPSHOT), at
 * exit breakpoints and on every fatal path. VMX: one field per VMCS component the CPU supports
 * (encoding, VMREAD value; SDM Vol. 3D Appendix B). SVM: the VMCB as (byte offset, qword) pairs.
 * 'seq' is odd while the hypervisor writes the area and even when it is complete (a seqlock).
 */
#define HV_SNAPSHOT_MAX_FIELDS 512
#define HV_SNAP_REQUEST 1
#define HV_SNAP_BREAK   2
#define HV_SNAP_FATAL   3
#define HV_SNAP_TRUNCATED 1   /* flags: more fields than HV_SNAPSHOT_MAX_FIELDS */

struct hv_snapshot_field {
    uint32_t encoding;
    uint32_t reserved;
    uint64_t value;
};

struct hv_snapshot {
    uint64_t seq;
    uint32_t vendor;
    uint32_t cpu;
    uint32_t why;           /* HV_SNAP_* */
    uint32_t count;
    uint32_t flags;
    uint32_t exit_reason;   /* native reason of the exit being handled, if any */
    uint64_t tsc;
    uint64_t gpr[16];       /* guest GPRs at that exit, in x86 encoding order RAX, RCX, RDX, RBX, RSP, ... */
    struct hv_snapshot_field field[HV_SNAPSHOT_MAX_FIELDS];
};

/*
 * Exit breakpoints, evaluated inside the hypervisor on every exit (a gdb conditional breakpoint per
 * exit costs ~40x more). A tool arms an entry by writing it (see the protocol below); an exit that
 * matches every set criterion is flagged HV_REC_BREAK_HIT, the CPU's snapshot is taken, and the CPU
 * calls hv_break_hit(cpu, entry, record, generation), where gdb keeps its one breakpoint: a hit whose
 * table generation (RCX) is no longer the table's was matched before a tool rewrote it, and is resumed.
 */
#define HV_BREAK_MAX      8
#define HV_BRK_ANY        0xffffffffu   /* kind / reason / cpu: match any */
#define HV_BRK_MATCH_ARG0 0x1           /* arg0 must equal 'arg0' (MSR index, CR number, port, CPUID leaf) */
#define HV_BRK_MATCH_GPA  0x2           /* gpa must lie in [gpa_lo, gpa_hi] */
#define HV_BRK_TRACE      0x4           /* a tracepoint: count matching exits, never stop */

/*
 * The condition of an entry: up to HV_BREAK_TERMS terms (operand op value), all of which must hold
 * (AND). Operands 0-15 are the guest GPRs in x86 encoding order (RAX, RCX, ...; 4 = RSP is not in the
 * exit's register frame and never used) as the guest resumes with them, i.e. after the handler
 * (CPUID's outputs, RDMSR's value); the others are fields of the exit's record. Comparisons unsigned.
 */
#define HV_BREAK_TERMS    4
#define HV_BRK_OPD_GPRS   16            /* operands below this are GPRs */
#define HV_BRK_OPD_ARG0   16
#define HV_BRK_OPD_ARG1   17
#define HV_BRK_OPD_QUAL   18
#define HV_BRK_OPD_GPA    19
#define HV_BRK_OPD_RIP    20
#define HV_BRK_OPD_CR3    21
#define HV_BRK_OPD_COUNT  22
#define HV_BRK_OP_EQ      0
#define HV_BRK_OP_NE      1
#define HV_BRK_OP_LT      2
#define HV_BRK_OP_LE      3
#define HV_BRK_OP_GT      4
#define HV_BRK_OP_GE      5
#define HV_BRK_OP_TEST    6             /* (operand & value) != 0 */

struct hv_break_term {
    uint8_t operand;        /* HV_BRK_OPD_* or a GPR number */
    uint8_t op;             /* HV_BRK_OP_* */
    uint8_t reserved[6];
    uint64_t value;
};

struct hv_break {
    uint32_t enabled;
    uint32_t kind;          /* HV_EXIT_* or HV_BRK_ANY */
    uint32_t reason;        /* native reason or HV_BRK_ANY */
    uint32_t cpu;           /* CPU index or HV_BRK_ANY */
    uint32_t flags;         /* HV_BRK_MATCH_*, HV_BRK_TRACE */
    uint32_t nterms;        /* condition terms in use (0 = no condition) */
    uint64_t arg0;
    uint64_t gpa_lo, gpa_hi;
    uint64_t hits;          /* exits that matched (criteria and condition), counted by the hypervisor */
    uint64_t ignore;        /* stop only once hits > ignore (gdb's ignore count) */
    struct hv_break_term term[HV_BREAK_TERMS];
};

/*
 * Publishing a table while the guest runs (issue 16). Each CPU keeps a pre-decoded copy of the table
 * (hv/include/hv/break_cache.h), made when it first sees a new 'generation', so a tool changes the table
 * only in this order (gdbext/model.py publish_writes, used by hv-break and benchmarks/break_table.py):
 *   1. armed = 0           no CPU evaluates or fires an entry from here on (it re-checks 'armed' and
 *                          'generation' after copying the table and before counting a hit)
 *   2. write the entries and 'kinds'
 *   3. generation += 1     never 0 (0 = a tool that keeps no generation: the hypervisor then decodes the
 *                          table on every exit) and never 0xffffffff (the hypervisor's "none"): 0xfffffffe
 *                          is followed by 1
 *   4. armed = the number of enabled entries
 * each write visible before the next (x86 stores are seen in program order, SDM Vol. 3A 10.2.2; gdb
 * writes while every CPU is stopped). A CPU that copied the table while it changed sees 'armed' 0 or a
 * new generation afterwards and drops the copy; it never evaluates an entry it copied torn.
 */
struct hv_break_config {
    uint32_t armed;         /* number of enabled entries: 0 keeps the exit path to one load */
    uint32_t last_hit;      /* index of the entry that matched last */
    uint32_t last_cpu;
    uint32_t kinds;         /* bit K: an enabled entry can match kind K (HV_EXIT_*); 0 = any kind may
                               match. With generation 0 exits of other kinds are rejected before the
                               table is read (a generation's compiled form has this per CPU) */
    struct hv_break entry[HV_BREAK_MAX];
    uint32_t generation;    /* bumped by the tools at each change of the table (protocol above) */
    uint32_t reserved;
};

/*
 * Exit records: one fixed 80-byte record per VM exit in a per-CPU ring. 'seq' is the record's
 * per-CPU sequence number (1, 2, 3, ...); the producer writes it 0 first and its final value last,
 * so a reader that sees the same expected seq before and after copying a record has an untorn copy.
 * Handling time = tsc_resume - tsc: from the exit handler's first instruction to the end of its work,
 * just before the record is published and the guest resumed (0: the guest was not resumed, e.g. the
 * exit that ended the run). ABI v1 records were the first 64 bytes, without tsc_resume and cr3.
 */
#define HV_RECORD_SIZE 80
#define HV_REC_BREAK_HIT      0x01   /* an exit breakpoint matched this exit */
#define HV_REC_INJECTED       0x02   /* the handler injected an event into the guest */
#define HV_REC_DROPPED_BEFORE 0x04   /* records were dropped between the previous one and this */
#define HV_REC_SECURITY       0x08   /* the guest touched hypervisor memory (blocked, #GP reflected) or a
                                        hidden hypervisor device (an absent device to it) */

struct hv_record {
    uint64_t seq;
    uint64_t tsc;           /* host TSC at the exit */
    uint16_t cpu;
    uint8_t kind;           /* HV_EXIT_* */
    uint8_t flags;          /* HV_REC_* */
    uint16_t reason;        /* native: VMX basic exit reason, SVM exit code (0xffff = VMEXIT_INVALID) */
    uint8_t insn_len;       /* length of the exiting instruction, 0 if unknown */
    uint8_t reserved;
    uint64_t qual;          /* VMX exit qualification / SVM EXITINFO1 */
    uint64_t rip;           /* guest RIP at the exit */
    uint64_t gpa;           /* guest-physical address (EPT violation / #NPF), else 0 */
    uint64_t arg0;          /* per kind: CPUID leaf, MSR index, CR number, hypercall, vector, ... */
    uint64_t arg1;          /* per kind: CPUID sub-leaf, MSR value written, CR value, error code, ... */
    uint64_t tsc_resume;    /* host TSC when handling ended and the guest was about to resume (v2) */
    uint64_t cr3;           /* the guest's CR3 at the exit: its address space (VMCS GUEST_CR3 /
                               VMCB CR3; both are the guest's own with EPT / NPT) (v2) */
};

/*
 * Per-CPU single-producer ring: a header of three cache lines, then 'capacity' records (a power of
 * two). The producer (the CPU's exit handler) owns 'head' (records ever published); the consumer owns
 * 'tail' (records it has consumed) and 'reader', written only by the host.
 *
 * Policies, by who reads the ring (head - tail == capacity is "full"):
 * - No reader yet ('reader' HV_READER_NONE) and 'wait_ticks' != 0 (cmdline ring_wait=S, which
 *   `hvtrace capture` and the TUI pass when they start the session): tracing waits for its reader. A
 *   full ring makes the producing CPU spin (pause) at the end of its exit handler until the reader
 *   frees a slot, at most 'wait_ticks' TSC ticks; when that runs out the ring stops waiting for good
 *   ('wait_expired') and falls back to 'policy'. Drops are counted. The waiting CPU holds no lock
 *   other CPUs need to make progress, except during an APIC-page step (core/guest/apic_step.c
 *   step_lock, which only another CPU's APIC step waits for); other CPUs run on until their own
 *   ring fills. Only the host ends a wait, so it is bounded; a plain run never waits.
 * - A lossless reader attached (HV_READER_ATTACHED, it writes 'tail'): a full ring waits the same way
 *   (bounded, 'wait_ticks', when set), else drops the newest record. The ring never overwrites
 *   records an attached reader has not consumed.
 * - Nobody reads (a plain `hvtrace run`, a gdb-only session: HV_READER_NONE without ring_wait, or
 *   HV_READER_LEFT after the reader detached): 'policy' decides. HV_RING_OVERWRITE (the default)
 *   keeps the newest records, so a debugger at an exit break sees the exits leading to it; readers
 *   detect overwritten records by seq. HV_RING_DROP_NEWEST keeps the oldest.
 * Dropped records are counted in 'dropped' (the next record carries HV_REC_DROPPED_BEFORE); those
 * dropped while no reader was attached also in 'dropped_unread'. 'enabled' switches tracing at run time.
 */
#define HV_RING_DROP_NEWEST   0
#define HV_RING_OVERWRITE     1
#define HV_RING_DEFAULT_CAPACITY 4096   /* the floor of the size rule (ring=auto): see trace.c */
#define HV_RING_MAX_CAPACITY  (1u << 20)
#define HV_RING_RAM_SHARE     32        /* ring=auto: all rings together take 1/32 of usable RAM */

#define HV_READER_NONE     0   /* no reader has attached yet */
#define HV_READER_ATTACHED 1   /* a lossless reader consumes and writes 'tail' */
#define HV_READER_LEFT     2   /* the reader detached: nobody reads any more */

struct hv_ring {
    uint64_t head;
    /* producer-private, on the producer's line (the host never reads them): */
    uint32_t room;          /* records it may still publish before its next look at tail and reader */
    uint32_t overwrites;    /* 1 while a full ring overwrites its oldest record whenever no reader is
                               attached (policy OVERWRITE, no wait pending) */
    uint32_t drop_flag;     /* HV_REC_DROPPED_BEFORE while the next record published must carry it */
    uint32_t slot_mask;     /* capacity - 1: record n (from 1) is in slot (n - 1) & slot_mask */
    uint8_t pad0[40];
    uint64_t tail;
    uint32_t reader;        /* HV_READER_*, written by the host */
    uint32_t reserved;
    uint8_t pad1[48];
    uint64_t dropped;
    uint32_t capacity;
    uint32_t policy;        /* HV_RING_*: what a full ring does while nobody reads it */
    uint32_t enabled;       /* 0 = tracing off */
    uint32_t cpu;
    uint64_t dropped_flagged;   /* producer-private: 'dropped' when the last drop flag was set */
    uint64_t dropped_unread;    /* of 'dropped': while no reader was attached */
    uint64_t wait_ticks;    /* longest wait for the reader, TSC ticks (0 = never wait) */
    uint64_t waited_ticks;  /* TSC ticks spent waiting for the reader so far */
    uint32_t wait_expired;  /* 1: a wait ran out; the ring no longer waits */
    uint32_t reserved2;
};

/*
 * Record stream for hosts without shared RAM (Bochs, real hardware): with trace_e9=1 every record is
 * also written to port 0xE9 as a frame: HV_FRAME_MAGIC (u32), the 80-byte record, then the CRC-32
 * (IEEE 802.3, as zlib.crc32) of the record (u32), all little endian. Console text shares the port;
 * the magic and checksum let a reader resynchronise. The port is the hypervisor's alone: a loaded
 * guest's writes to it are intercepted and go to the guest's own console (core/guest/io_policy.c).
 */
#define HV_FRAME_MAGIC 0x52564821u   /* "!HVR" */
#define HV_FRAME_SIZE  88

/*
 * Discovery header: the tools find everything through it, by the ELF symbol 'hv_trace' or by
 * scanning guest RAM for HV_DISCOVERY_MAGIC on an 8-byte boundary. Addresses are physical.
 */
#define HV_DISCOVERY_MAGIC 0x4543415254564821ull   /* "!HVTRACE" in memory (little endian) */

/*
 * Memory that must never change once the CPUs run as guests (discovery 'immutable'): the image's code
 * and read-only data, the host page tables, each CPU's GDT/TSS/IDT and its MSR and I/O permission maps.
 * Every range is listed before its CPU's 'launched' bit is set; host tools hash them when all CPUs are
 * launched and again after the run (tests/integration/test_chaos_guest.py). What legitimately changes
 * (VMCS/VMCB, stage-2 tables, rings, snapshots, stacks, the rest of the per-CPU state) is not listed.
 * The table itself lies in the image and never changes after launch either.
 */
#define HV_IMMUTABLE_MAX 200   /* >= 8 + 3 * HV_MAX_CPUS (core/discovery.c checks) */

struct hv_range {
    uint64_t base;              /* physical */
    uint64_t length;            /* bytes */
};

struct hv_discovery {
    uint64_t magic;
    uint32_t abi_version;
    uint32_t header_size;       /* sizeof(struct hv_discovery) */
    uint32_t vendor;            /* HV_VENDOR_*; set once a back end is chosen */
    uint32_t cpu_count;         /* CPUs online */
    uint32_t snapshot_size;     /* sizeof(struct hv_snapshot) */
    uint32_t record_size;       /* HV_RECORD_SIZE */
    uint32_t ring_capacity;     /* records per ring */
    uint32_t reserved;
    uint64_t snapshot[HV_MAX_CPUS];   /* per-CPU struct hv_snapshot, 0 when absent */
    uint64_t ring[HV_MAX_CPUS];       /* per-CPU struct hv_ring, 0 when absent */
    uint64_t break_config;      /* struct hv_break_config */
    uint64_t stage2_root;       /* EPT PML4 / NPT nCR3 table, shared by every CPU; 0 before launch */
    uint64_t launched;          /* bit n set: CPU n runs as a guest (its blue pill succeeded) */
    uint8_t build_id[20];       /* GNU build-id of the image (SHA-1) */
    uint8_t reserved2[4];
    uint64_t immutable;         /* struct hv_range[immutable_count]: memory no one writes after launch */
    uint32_t immutable_count;
    uint32_t reserved3;
};

#endif /* HV_ABI_H */
