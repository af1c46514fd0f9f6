/*
 * Stopping and resuming the whole machine for gdb (all-stop mode). The CPU that stops (a gdb
 * breakpoint's int3, the #DB of a single step, or gdbstub_break() when gdb's bytes arrive) becomes the
 * owner and kicks every other CPU that runs the guest with an NMI: NMIs exit under both back ends, the
 * kick is consumed by vcpu_nmi_arrived() (never passed to the guest), which parks the CPU here
 * (gdbstub_park_here, park.S: its registers saved, no IRET inside the NMI handler). The owner runs the
 * protocol (commands.c) on its own exception frame; resume releases every parked CPU and waits until
 * they left before the next stop may begin. A CPU that hits one of gdb's breakpoints while another CPU
 * owns the stub parks with its RIP moved back onto the int3, so it executes it again after the resume
 * (or the original instruction, if gdb removed the breakpoint meanwhile).
 */
#include <hv/cmdline.h>
#include <hv/console.h>
#include <hv/gdb_stub.h>
#include <hv/gdb_uart.h>
#include <hv/gdbstub.h>
#include <hv/lapic.h>
#include <hv/timer.h>
#include <hv/x86.h>

#include "hv_target.h"

#define POLL_EVERY 256              /* exits between two looks at the UART, per CPU (a port read is costly under TCG) */
#define PARK_TIMEOUT_MS 10000       /* a kicked CPU that never parks: listed as running, said after the resume */

u16 gdbstub_port;
static struct gdb_stub stub;
static volatile u32 owner;          /* index + 1 of the CPU that runs the stub, 0: none */
static volatile u32 release_gen;    /* bumped by each resume: parked CPUs leave */
/*
 * 1 from the owner's start until its resume begins: only then do kicks and exits park a CPU. A kick's
 * NMI can be taken late (SVM holds it while GIF = 0, the CPU may have parked at an exit instead): one
 * that arrives during or after the resume must not park the CPU again, or the resume would wait for it.
 */
static volatile u32 halting;
static u32 stepping[HV_MAX_CPUS];   /* the CPU's #DB is the single step gdb asked for */
static u32 polls[HV_MAX_CPUS];
struct exception_frame *volatile gdbstub_frames[HV_MAX_CPUS];

void gdbstub_init(void)
{
    if (!hv_options.gdbstub)
        return;
    if (hv_options.console_port == GDBSTUB_UART) {
        printk("gdbstub: COM3 (0x%x) carries the console (console=): the stub is off\n", GDBSTUB_UART);
        return;
    }
    if (!uart_init(GDBSTUB_UART, 1)) {
        printk("gdbstub: no UART at 0x%x: the stub is off\n", GDBSTUB_UART);
        return;
    }
    stub.link = (struct gdb_link){ .getc = gdb_uart_getc, .putc = gdb_uart_putc, .ctx = (void *)(u64)GDBSTUB_UART };
    gdb_stub_init(&stub, &hv_gdb_target_ops, 0);
    gdbstub_port = GDBSTUB_UART;
    printk("gdbstub: gdb remote protocol on COM3 (0x%x), hidden from the guest\n", GDBSTUB_UART);
}

u32 gdbstub_owner_cpu(void)
{
    return owner - 1;
}

static void park(struct percpu *me, struct exception_frame *f)
{
    u32 gen = __atomic_load_n(&release_gen, __ATOMIC_ACQUIRE);
    __atomic_store_n(&gdbstub_frames[me->index], f, __ATOMIC_RELEASE);
    while (__atomic_load_n(&release_gen, __ATOMIC_ACQUIRE) == gen && __atomic_load_n(&owner, __ATOMIC_ACQUIRE))
        cpu_relax();
    __atomic_store_n(&gdbstub_frames[me->index], 0, __ATOMIC_RELEASE);
}

void gdbstub_park_frame(struct exception_frame *f);
void gdbstub_park_frame(struct exception_frame *f)
{
    park(this_cpu(), f);
}

void gdbstub_kicked(void)
{
    if (__atomic_load_n(&halting, __ATOMIC_ACQUIRE) && __atomic_load_n(&owner, __ATOMIC_ACQUIRE) != this_cpu()->index + 1)
        gdbstub_park_here();
}

static u64 unparked;                /* CPUs kicked at the last stop that did not park in time */

/* Bring every other CPU that runs the guest into the stub (bounded: a CPU that never parks is not listed). */
static void stop_others(struct percpu *me)
{
    u64 kicked = 0;
    for (u32 i = 0; i < cpu_count; i++) {
        struct percpu *t = cpus[i];
        if (t == me || !t || !t->online || !t->launched || gdbstub_frames[i])
            continue;
        __atomic_store_n(&t->kicked, 1, __ATOMIC_RELEASE);
        lapic_send_ipi(t->apic_id, ICR_NMI);
        kicked |= 1ull << i;
    }
    u64 deadline = deadline_after_ms(PARK_TIMEOUT_MS);
    unparked = 0;
    for (u32 i = 0; i < cpu_count; i++) {
        while ((kicked >> i & 1) && !__atomic_load_n(&gdbstub_frames[i], __ATOMIC_ACQUIRE) && !deadline_passed(deadline))
            cpu_relax();
        if ((kicked >> i & 1) && !__atomic_load_n(&gdbstub_frames[i], __ATOMIC_ACQUIRE))
            unparked |= 1ull << i;
    }
}

static void resume_others(struct percpu *me)
{
    u64 parked = 0;
    for (u32 i = 0; i < cpu_count; i++)
        if (i != me->index && __atomic_load_n(&gdbstub_frames[i], __ATOMIC_ACQUIRE))
            parked |= 1ull << i;
    __atomic_add_fetch(&release_gen, 1, __ATOMIC_ACQ_REL);
    u64 deadline = deadline_after_ms(PARK_TIMEOUT_MS);
    for (u32 i = 0; i < cpu_count; i++)
        while ((parked >> i & 1) && __atomic_load_n(&gdbstub_frames[i], __ATOMIC_ACQUIRE) && !deadline_passed(deadline))
            cpu_relax();
}

/* Serve gdb until it resumes; a step of a CPU parked by a kick (no exception frame to set TF in) is
 * reported at once as done where it stands. Returns with TF set where a step was asked. */
static void serve(struct percpu *me, u8 signal, bool swbreak)
{
    u32 cpu = me->index;
    for (;;) {
        enum gdb_action act = gdb_stub_stopped(&stub, cpu, signal, swbreak);
        if (act == GDB_ACT_KILL)
            printk("gdbstub: gdb sent kill: the run goes on (detached)\n");
        if (act != GDB_ACT_STEP)
            return;
        struct exception_frame *f = gdbstub_frames[stub.step_cpu];
        if (f && f->vector != 2) {
            f->rflags |= X86_RFLAGS_TF;
            stepping[stub.step_cpu] = 1;
            return;
        }
        cpu = stub.step_cpu < cpu_count ? stub.step_cpu : me->index;
        signal = GDB_SIGTRAP;
        swbreak = false;
    }
}

bool gdbstub_exception(struct exception_frame *f)
{
    struct percpu *me = this_cpu();
    bool swbreak = false, interrupt = false;
    if (f->vector == 3) {
        u64 at = f->rip - 1;
        swbreak = gdb_stub_is_swbreak(&stub, at);
        interrupt = at == (u64)gdbstub_break_insn;
        if (!swbreak && !interrupt)
            return false;                   /* a stray int3: fatal as before */
        if (swbreak)
            f->rip = at;                    /* report it on the breakpoint; executed again after a park */
    } else {
        u64 dr6;
        __asm__ volatile("mov %%dr6, %0" : "=r"(dr6));
        if (!(dr6 & X86_DR6_BS) || !stepping[me->index])
            return false;
        __asm__ volatile("mov %0, %%dr6" : : "r"(0xffff0ff0ull));      /* DR6's reset value */
        stepping[me->index] = 0;
        f->rflags &= ~X86_RFLAGS_TF;
    }
    u32 none = 0;
    if (!__atomic_compare_exchange_n(&owner, &none, me->index + 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        if (none == me->index + 1)
            return false;                   /* a breakpoint inside the stub itself: fatal */
        park(me, f);                        /* another CPU stopped first */
        return true;
    }
    __atomic_store_n(&gdbstub_frames[me->index], f, __ATOMIC_RELEASE);
    __atomic_store_n(&halting, 1, __ATOMIC_RELEASE);
    stop_others(me);
    serve(me, interrupt ? GDB_SIGINT : GDB_SIGTRAP, swbreak);
    __atomic_store_n(&gdbstub_frames[me->index], 0, __ATOMIC_RELEASE);
    __atomic_store_n(&halting, 0, __ATOMIC_RELEASE);
    resume_others(me);
    __atomic_store_n(&owner, 0, __ATOMIC_RELEASE);
    if (unparked)           /* said now: while stopped, a parked CPU may hold the console lock */
        printk("gdbstub: CPUs not stopped within %u ms at the last stop (mask 0x%lx)\n", PARK_TIMEOUT_MS, unparked);
    return true;
}

void gdbstub_poll(struct percpu *pc)
{
    /*
     * A stop in progress that this CPU's kick has not parked yet: park now. Under QEMU's TCG the
     * SVM back end's "stgi; nop; clgi" window may be too short for the held NMI, which then brings
     * the CPU out of the guest again and again without ever being taken in the host.
     */
    u32 o = __atomic_load_n(&owner, __ATOMIC_ACQUIRE);
    if (o && o != pc->index + 1 && __atomic_load_n(&halting, __ATOMIC_ACQUIRE)) {
        gdbstub_park_here();
        return;
    }
    if (++polls[pc->index] % POLL_EVERY || o || !gdb_uart_ready(gdbstub_port))
        return;
    gdbstub_break();
}
