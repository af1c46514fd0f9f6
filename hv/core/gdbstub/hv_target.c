/*
 * The hypervisor as the program gdb debugs: threads are CPUs, registers are each stopped CPU's frame,
 * memory is the hypervisor's address space. Physical mode (Qqemu.PhyMemMode:1, what gdbext's hv-*
 * commands ask for) reads the same identity map: the host's page tables map physical = virtual below
 * 4 GiB (boot/entry.S), and nothing above is read physically. Every access is guarded (fixup.h): an
 * unmapped address answers E14 instead of faulting. Writes clear CR0.WP around the store so gdb's
 * int3s reach the hypervisor's text whatever its page protections.
 *
 * monitor (qRcmd) commands, run on the CPU that owns the stub (the stopping CPU):
 *   vmread F...    VT-x: VMREAD of VMCS fields (hex encodings, SDM Vol. 3D Appendix B) from that CPU's
 *                  current VMCS, live. Answer: "CPU n", then "FIELD VALUE" per field (hex; "FIELD -"
 *                  where VMREAD fails). gdbext's hv-vmcs --live sends the snapshot's fields in batches
 *                  and compares (EXIT_REASON at a CPUID break: 10 both ways).
 */
#include <hv/backend.h>
#include <hv/console.h>
#include <hv/fixup.h>
#include <hv/gdbstub.h>
#include <hv/x86.h>

#include "hv_target.h"

#define PHYS_LIMIT (4ull << 30)

static u32 threads(void *ctx)
{
    (void)ctx;
    return cpu_count;
}

static bool alive(void *ctx, u32 cpu)
{
    (void)ctx;
    return cpu < cpu_count && gdbstub_frames[cpu];
}

static u16 selector(int which)
{
    u16 v = 0;
    switch (which) {
    case 0: __asm__ volatile("mov %%ds, %0" : "=r"(v)); break;
    case 1: __asm__ volatile("mov %%es, %0" : "=r"(v)); break;
    case 2: __asm__ volatile("mov %%fs, %0" : "=r"(v)); break;
    default: __asm__ volatile("mov %%gs, %0" : "=r"(v)); break;
    }
    return v;
}

static bool get_regs(void *ctx, u32 cpu, struct gdb_regs *r)
{
    if (!alive(ctx, cpu))
        return false;
    const struct exception_frame *f = gdbstub_frames[cpu];
    const u64 gpr[16] = { f->rax, f->rbx, f->rcx, f->rdx, f->rsi, f->rdi, f->rbp, f->rsp,
                          f->r8, f->r9, f->r10, f->r11, f->r12, f->r13, f->r14, f->r15 };
    for (int i = 0; i < 16; i++)
        r->gpr[i] = gpr[i];
    r->rip = f->rip;
    r->rflags = f->rflags;
    r->seg[0] = f->cs;
    r->seg[1] = f->ss;
    for (int i = 0; i < 4; i++)
        r->seg[2 + i] = selector(i);        /* the same on every CPU (cpu_init_local) */
    r->fs_base = 0;
    r->gs_base = (u64)cpus[cpu];            /* GS base is the CPU's struct percpu (percpu.h) */
    return true;
}

static bool set_regs(void *ctx, u32 cpu, const struct gdb_regs *r)
{
    if (!alive(ctx, cpu))
        return false;
    struct exception_frame *f = gdbstub_frames[cpu];
    u64 *const gpr[16] = { &f->rax, &f->rbx, &f->rcx, &f->rdx, &f->rsi, &f->rdi, &f->rbp, &f->rsp,
                           &f->r8, &f->r9, &f->r10, &f->r11, &f->r12, &f->r13, &f->r14, &f->r15 };
    for (int i = 0; i < 16; i++)
        *gpr[i] = r->gpr[i];
    f->rip = r->rip;
    /* gdb sets the arithmetic flags, TF, DF, RF, AC and ID; IF, IOPL, NT and VM stay the hypervisor's. */
    const u64 writable = 0x250dd5;
    f->rflags = (f->rflags & ~writable) | (r->rflags & writable);
    return true;
}

static bool reachable(u64 addr, u32 n, bool phys)
{
    u64 last = addr + n - 1;
    if (last < addr)
        return false;
    if (phys)
        return last < PHYS_LIMIT;
    return ((i64)addr >> 47 == 0 || (i64)addr >> 47 == -1) && ((i64)last >> 47 == 0 || (i64)last >> 47 == -1);
}

static bool read_byte(const u8 *p, u8 *v)
{
    struct fixup *fx = fixup_slot();
    u8 val = 0;
    __asm__ volatile(ARM_FIXUP "movb (%[p]), %[v]" DISARM_FIXUP
                     : [v] "+q"(val), [fx_rip] "+m"(fx->rip) : [p] "r"(p) : "r11", "memory");
    *v = val;
    return !fx->fault;
}

static bool write_byte(u8 *p, u8 v)
{
    struct fixup *fx = fixup_slot();
    __asm__ volatile(ARM_FIXUP "movb %[v], (%[p])" DISARM_FIXUP
                     : [fx_rip] "+m"(fx->rip) : [p] "r"(p), [v] "q"(v) : "r11", "memory");
    return !fx->fault;
}

static u32 read_mem(void *ctx, u64 addr, u8 *buf, u32 n, bool phys)
{
    (void)ctx;
    u32 i = 0;
    if (!reachable(addr, n, phys))
        return 0;
    for (; i < n; i++)
        if (!read_byte((const u8 *)(addr + i), &buf[i]))
            break;
    return i;
}

static u32 write_mem(void *ctx, u64 addr, const u8 *buf, u32 n, bool phys)
{
    (void)ctx;
    u32 i = 0;
    if (!reachable(addr, n, phys))
        return 0;
    u64 cr0 = read_cr0();
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 & ~X86_CR0_WP) : "memory");
    for (; i < n; i++)
        if (!write_byte((u8 *)(addr + i), buf[i]))
            break;
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
    return i;
}

/* "vmread F1 F2 ...": one line per field on the CPU that owns the stub (see the top comment). */
static bool monitor(void *ctx, u32 cpu, const char *cmd, char *out, u32 cap)
{
    (void)ctx;
    (void)cpu;                              /* VMREAD reads this CPU's current VMCS: always the owner's */
    static const char vmread_cmd[] = "vmread";
    u32 i = 0;
    for (; vmread_cmd[i] && cmd[i] == vmread_cmd[i]; i++)
        ;
    if (vmread_cmd[i] || (cmd[i] && cmd[i] != ' '))
        return false;
    if (!virt_backend || !virt_backend->live_field) {
        snprintf(out, cap, "vmread: not a VT-x run\n");
        return true;
    }
    u32 n = (u32)snprintf(out, cap, "CPU %u\n", gdbstub_owner_cpu());
    const u8 *p = (const u8 *)cmd + i, *end = p;
    while (*end)
        end++;
    for (;;) {
        while (p < end && *p == ' ')
            p++;
        if (p >= end || n + 40 > cap)
            break;
        u64 field, value;
        if (!gdb_parse_hex(&p, end, &field) || (p < end && *p != ' ')) {
            snprintf(out, cap, "usage: monitor vmread FIELD... (hex encodings)\n");
            return true;
        }
        if (virt_backend->live_field(field, &value))
            n += (u32)snprintf(out + n, cap - n, "%lx %lx\n", field, value);
        else
            n += (u32)snprintf(out + n, cap - n, "%lx -\n", field);     /* VMfail: not in this VMCS */
    }
    return true;
}

/* Z1 / Z2 / Z4: every CPU is stopped; each loads the slots at its next exit (debugregs.c). */
static void hw_changed(void *ctx, const struct gdb_hw_slots *h)
{
    (void)ctx;
    gdbstub_dr_set(h);
}

const struct gdb_target_ops hv_gdb_target_ops = {
    .threads = threads, .thread_alive = alive, .get_regs = get_regs, .set_regs = set_regs,
    .read_mem = read_mem, .write_mem = write_mem, .monitor = monitor, .hw_changed = hw_changed,
};
