/*
 * Host-side driver of the hypervisor's gdb stub (hv/core/gdbstub/packet.c, commands.c) over stdin and
 * stdout, with a fake target: 4 CPUs (CPU 2 offline), registers with recognisable values, 64 KiB of
 * "virtual" memory at 0x100000 and 4 KiB of "physical" memory at 0x1000 (Qqemu.PhyMemMode:1 selects
 * it). gdb can drive it through a pipe (target remote | test_gdbstub), tests/unit/test_native_gdbstub*.py
 * feed it bytes. When gdb resumes: a step advances the stepped CPU's RIP by one and stops it
 * (SIGTRAP), and every other CPU's too unless the step is alone (vCont naming only that thread); a
 * continue stops CPU 1 on the lowest inserted breakpoint (swbreak) or, with none, with
 * SIGINT as if interrupted. End of input ends the run (exit 0); a kill exits 0 too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hv/gdb_stub.h>

#define NCPU 4
#define VBASE 0x100000u
#define VSIZE 0x10000u
#define PBASE 0x1000u
#define PSIZE 0x1000u

static struct gdb_regs regs[NCPU];
static u8 vmem[VSIZE], pmem[PSIZE];
static struct gdb_stub stub;

static int rd(void *ctx)
{
    (void)ctx;
    int c = getchar();
    return c == EOF ? -1 : c;
}

static void wr(void *ctx, u8 c)
{
    (void)ctx;
    putchar(c);
    fflush(stdout);
}

static u32 threads(void *ctx)
{
    (void)ctx;
    return NCPU;
}

static bool alive(void *ctx, u32 cpu)
{
    (void)ctx;
    return cpu < NCPU && cpu != 2;
}

static bool get_regs(void *ctx, u32 cpu, struct gdb_regs *r)
{
    (void)ctx;
    if (!alive(ctx, cpu))
        return false;
    *r = regs[cpu];
    return true;
}

static bool set_regs(void *ctx, u32 cpu, const struct gdb_regs *r)
{
    (void)ctx;
    if (!alive(ctx, cpu))
        return false;
    regs[cpu] = *r;
    return true;
}

static u8 *at(u64 addr, bool phys, u32 *room)
{
    u64 base = phys ? PBASE : VBASE, size = phys ? PSIZE : VSIZE;
    if (addr < base || addr >= base + size)
        return NULL;
    *room = (u32)(base + size - addr);
    return (phys ? pmem : vmem) + (addr - base);
}

/* The fake target's bytes at addr, and how many of n are there (0: unmapped). */
static u32 span(u64 addr, bool phys, u32 n, u8 **p)
{
    u32 room;
    *p = at(addr, phys, &room);
    return *p ? (n < room ? n : room) : 0;
}

static u32 read_mem(void *ctx, u64 addr, u8 *buf, u32 n, bool phys)
{
    (void)ctx;
    u8 *p;
    n = span(addr, phys, n, &p);
    if (n)
        memcpy(buf, p, n);
    return n;
}

static u32 write_mem(void *ctx, u64 addr, const u8 *buf, u32 n, bool phys)
{
    (void)ctx;
    u8 *p;
    n = span(addr, phys, n, &p);
    if (n)
        memcpy(p, buf, n);
    return n;
}

/* The debug registers the slots would load: DR7 and the changes counted (monitor "dr7" prints them). */
static u64 fake_dr7;
static u32 hw_changes;

static bool monitor(void *ctx, u32 cpu, const char *cmd, char *out, u32 cap)
{
    (void)ctx;
    if (!strncmp(cmd, "echo ", 5)) {
        snprintf(out, cap, "cpu %u: %s\n", cpu, cmd + 5);
        return true;
    }
    if (!strcmp(cmd, "dr7")) {
        snprintf(out, cap, "dr7 %llx changes %u\n", (unsigned long long)fake_dr7, hw_changes);
        return true;
    }
    return false;
}

static void hw_changed(void *ctx, const struct gdb_hw_slots *h)
{
    (void)ctx;
    fake_dr7 = gdb_hw_dr7(h);
    hw_changes++;
}

static const struct gdb_target_ops ops = {
    .threads = threads, .thread_alive = alive, .get_regs = get_regs, .set_regs = set_regs,
    .read_mem = read_mem, .write_mem = write_mem, .monitor = monitor, .hw_changed = hw_changed,
};

int main(void)
{
    for (u32 c = 0; c < NCPU; c++) {
        for (u32 i = 0; i < 16; i++)
            regs[c].gpr[i] = 0x1111111111111111ull * (i % 15 + 1) + c;
        regs[c].rip = VBASE + 0x100 * c;
        regs[c].rflags = 0x202;
        regs[c].seg[0] = 0x08;
        regs[c].seg[1] = 0x10;
        regs[c].fs_base = 0xf5000 + c;
        regs[c].gs_base = 0x65000 + c;
    }
    for (u32 i = 0; i < VSIZE; i++)
        vmem[i] = (u8)(i * 7 + 1);
    for (u32 i = 0; i < PSIZE; i++)
        pmem[i] = (u8)(0xa5 ^ i);
    stub.link = (struct gdb_link){ .getc = rd, .putc = wr };
    gdb_stub_init(&stub, &ops, NULL);
    u32 cpu = 0;
    u8 sig = GDB_SIGTRAP;
    enum gdb_stop_why why = GDB_STOP_SIGNAL;
    u64 data_addr = 0;
    for (;;) {
        enum gdb_action act = gdb_stub_stopped(&stub, cpu, sig, why, data_addr);
        why = GDB_STOP_SIGNAL;
        switch (act) {
        case GDB_ACT_GONE:
        case GDB_ACT_KILL:
            return 0;
        case GDB_ACT_DETACH:
            cpu = 0;
            sig = GDB_SIGTRAP;
            break;
        case GDB_ACT_STEP:
            cpu = stub.step_cpu;
            for (u32 i = 0; i < NCPU; i++)      /* the stepped CPU, and the others unless it steps alone */
                if (i == cpu || !stub.step_alone)
                    regs[i].rip++;
            sig = GDB_SIGTRAP;
            break;
        case GDB_ACT_CONTINUE: {
            u64 lowest = ~0ull;
            for (u32 i = 0; i < GDB_MAX_SWBREAK; i++)
                if (stub.bp[i].used && stub.bp[i].addr < lowest)
                    lowest = stub.bp[i].addr;
            cpu = 1;
            sig = GDB_SIGTRAP;
            if (lowest != ~0ull) {      /* the lowest int3, else the first hardware slot, else Ctrl-C */
                regs[cpu].rip = lowest;
                why = GDB_STOP_SWBREAK;
                break;
            }
            for (u32 i = 0; i < GDB_HW_SLOTS && why == GDB_STOP_SIGNAL; i++) {
                if (!stub.hw.type[i])
                    continue;
                why = stub.hw.type[i] == GDB_HW_EXEC ? GDB_STOP_HWBREAK
                      : stub.hw.type[i] == GDB_HW_WRITE ? GDB_STOP_WATCH : GDB_STOP_AWATCH;
                data_addr = stub.hw.addr[i];
                if (why == GDB_STOP_HWBREAK)
                    regs[cpu].rip = data_addr;
            }
            if (why == GDB_STOP_SIGNAL)
                sig = GDB_SIGINT;
            break;
        }
        }
    }
}
