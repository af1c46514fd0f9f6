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
};

enum gdb_action {
    GDB_ACT_CONTINUE,           /* resume every CPU */
    GDB_ACT_STEP,               /* resume every CPU, 'step_cpu' single-steps one instruction */
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
    u32 stop_cpu;
    u8 stop_signal;
    bool stop_swbreak;          /* the stop is at one of our int3s (reported with swbreak:, PC already on it) */
    bool waiting;               /* gdb resumed us and waits for a stop reply */
    bool phys;                  /* Qqemu.PhyMemMode */
    struct gdb_swbreak bp[GDB_MAX_SWBREAK];
    u8 in[GDB_PACKET_MAX + 1];
    u8 out[GDB_PACKET_MAX + 64];
};

void gdb_stub_init(struct gdb_stub *s, const struct gdb_target_ops *ops, void *ctx);
/* A stop on 'cpu': sends the stop reply if gdb waits for one, then serves packets until gdb resumes
 * (or leaves): the action to take. */
enum gdb_action gdb_stub_stopped(struct gdb_stub *s, u32 cpu, u8 signal, bool swbreak);
/* True if 'addr' holds one of the stub's inserted int3s. */
bool gdb_stub_is_swbreak(const struct gdb_stub *s, u64 addr);
/* Remove every inserted breakpoint (detach, kill, the channel gone). */
void gdb_stub_remove_all(struct gdb_stub *s);

/* The target description (core/gdbstub/target_xml.c). */
extern const char gdb_target_xml[];
extern const u32 gdb_target_xml_len;

#endif
