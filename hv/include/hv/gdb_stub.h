/*
 * gdb stub core (core/gdbstub/commands.c): the remote protocol's commands over a target that the
 * caller describes with gdb_target_ops. The hypervisor's target is core/gdbstub/hv_target.c; the
 * host-side unit test has a fake one (tests/native/test_gdbstub.c). Threads are CPUs: thread N+1 is
 * CPU N (gdb reserves 0 and -1).
 */
#ifndef HV_GDB_STUB_H
#define HV_GDB_STUB_H

#include <hv/gdb_packet.h>

/* One CPU's registers as gdb sees them (the target description's core + segments features). */
struct gdb_regs {
    u64 gpr[16];                /* rax rbx rcx rdx rsi rdi rbp rsp r8..r15: gdb's order */
    u64 rip;
    u64 rflags;
    u64 seg[6];                 /* cs ss ds es fs gs */
    u64 fs_base, gs_base;
};

/*
 * gdb's Z1-Z4 as x86 debug registers (SDM Vol. 3B 18.2): four slots, each an address, its gdb type and
 * length. core/gdbstub/hw_slots.c allocates them and encodes DR7; the target loads them.
 */
#define GDB_HW_SLOTS 4
enum gdb_hw_type { GDB_HW_EXEC = 1, GDB_HW_WRITE = 2, GDB_HW_READ = 3, GDB_HW_ACCESS = 4 };    /* gdb's Z types */
struct gdb_hw_slots {
    u64 addr[GDB_HW_SLOTS];     /* 0 while free */
    u8 type[GDB_HW_SLOTS];      /* enum gdb_hw_type; 0: free */
    u8 len[GDB_HW_SLOTS];       /* 1, 2, 4 or 8 bytes (an execution breakpoint: 1) */
};
/* Z: 0, or the errno gdb is told: 22 (EINVAL: no debug register watches that), 28 (ENOSPC: four in use);
 * -1: a type x86 has no debug register form for (read-only watches): "not supported". */
int gdb_hw_insert(struct gdb_hw_slots *h, u32 type, u64 addr, u64 len);
/* z: 0, or 2 (ENOENT: nothing inserted there). */
int gdb_hw_remove(struct gdb_hw_slots *h, u32 type, u64 addr, u64 len);
/* DR7 for the used slots: Gn, R/Wn and LENn (SDM Figure 18-1), bit 10 reserved as 1. */
u64 gdb_hw_dr7(const struct gdb_hw_slots *h);

/* Why the target stopped, for the stop reply's stop reason ("Stop Reply Packets"). */
enum gdb_stop_why { GDB_STOP_SIGNAL, GDB_STOP_SWBREAK, GDB_STOP_HWBREAK, GDB_STOP_WATCH, GDB_STOP_AWATCH };

struct gdb_target_ops {
    u32 (*threads)(void *ctx);                          /* CPUs: threads 1..n */
    bool (*thread_alive)(void *ctx, u32 cpu);
    bool (*get_regs)(void *ctx, u32 cpu, struct gdb_regs *r);   /* false: no context (never parked) */
    bool (*set_regs)(void *ctx, u32 cpu, const struct gdb_regs *r);
    /* Bytes copied, fewer where memory ends (0: none). phys: Qqemu.PhyMemMode:1 is on. */
    u32 (*read_mem)(void *ctx, u64 addr, u8 *buf, u32 n, bool phys);
    u32 (*write_mem)(void *ctx, u64 addr, const u8 *buf, u32 n, bool phys);
    /* qRcmd (gdb's `monitor`): text into out (NUL-terminated); false: unknown command. */
    bool (*monitor)(void *ctx, u32 cpu, const char *cmd, char *out, u32 cap);
    /* The hardware slots changed (Z1-Z4, z1-z4, detach, kill). Absent: Z1-Z4 are not supported. */
    void (*hw_changed)(void *ctx, const struct gdb_hw_slots *h);
};

enum gdb_action {
    GDB_ACT_CONTINUE,           /* resume every CPU */
    GDB_ACT_STEP,               /* 'step_cpu' single-steps one instruction, every other CPU resumes
                                   unless 'step_alone' */
    GDB_ACT_DETACH,             /* D: breakpoints removed, everything runs, no one listens until gdb comes back */
    GDB_ACT_KILL,               /* k */
    GDB_ACT_GONE,               /* the channel ended */
};

#define GDB_MAX_SWBREAK 64
#define GDB_SIGINT 2
#define GDB_SIGTRAP 5

struct gdb_swbreak {
    u64 addr;
    u8 saved;
    bool used;
};

struct gdb_stub {
    struct gdb_link link;
    const struct gdb_target_ops *ops;
    void *ctx;
    u32 g_cpu, c_cpu;           /* Hg / Hc selections */
    u32 step_cpu;               /* GDB_ACT_STEP: which CPU */
    bool step_alone;            /* GDB_ACT_STEP: every other CPU stays stopped (a vCont that names only
                                   the stepped thread: gdb's step over a breakpoint) */
    u32 stop_cpu;
    u8 stop_signal;
    u8 stop_why;                /* enum gdb_stop_why: swbreak (PC already on our int3), hwbreak, watch, awatch */
    u64 stop_data_addr;         /* watch / awatch: the watched address */
    bool waiting;               /* gdb resumed us and waits for a stop reply */
    bool phys;                  /* Qqemu.PhyMemMode */
    struct gdb_swbreak bp[GDB_MAX_SWBREAK];
    struct gdb_hw_slots hw;
    u8 in[GDB_PACKET_MAX + 1];
    u8 out[GDB_PACKET_MAX + 64];
};

void gdb_stub_init(struct gdb_stub *s, const struct gdb_target_ops *ops, void *ctx);
/* A stop on 'cpu': sends the stop reply if gdb waits for one, then serves packets until gdb resumes
 * (or leaves): the action to take. data_addr: the watched address of a watch / awatch stop. */
enum gdb_action gdb_stub_stopped(struct gdb_stub *s, u32 cpu, u8 signal, enum gdb_stop_why why, u64 data_addr);
/* True if 'addr' holds one of the stub's inserted int3s. */
bool gdb_stub_is_swbreak(const struct gdb_stub *s, u64 addr);
/* Remove every inserted breakpoint and watchpoint (detach, kill, the channel gone). */
void gdb_stub_remove_all(struct gdb_stub *s);

/* The target description (core/gdbstub/target_xml.c). */
extern const char gdb_target_xml[];
extern const u32 gdb_target_xml_len;

#endif
