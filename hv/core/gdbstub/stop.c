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
#include <hv/abi.h>
#include <hv/cmdline.h>
#include <hv/console.h>
#include <hv/gdb_stub.h>
#include <hv/gdb_uart.h>
#include <hv/gdbstub.h>
#include <hv/lapic.h>
#include <hv/panic.h>
#include <hv/timer.h>
#include <hv/x86.h>

#include "hv_target.h"

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
volatile u32 gdbstub_halting;
static u32 stepping[HV_MAX_CPUS];   /* 1: the CPU's next #DB ends the single step gdb asked for; 2: see serve() */
/*
 * index + 1 of a CPU that steps alone (vCont naming only its thread: gdb steps over a breakpoint and
 * takes no other thread's stop meanwhile; gdb 13 aborts on one, infrun.c finish_step_over), 0: none.
 * The other CPUs run on, but a breakpoint or watchpoint one of them hits is not reported: it waits,
 * parked, for the step's stop (which clears this) and is hit again after the resume.
 */
static volatile u32 step_alone_cpu;
static volatile u8 awaiting_step[HV_MAX_CPUS];  /* parked for a step alone: no resume waits for it to leave */

static bool step_alone_other(const struct percpu *me)
{
    u32 alone = __atomic_load_n(&step_alone_cpu, __ATOMIC_ACQUIRE);
    return alone && alone != me->index + 1;
}
static u64 step_from[HV_MAX_CPUS];  /* stepping 2: the parked RIP whose instruction the step executes */
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
    gdb_uart_serving(GDBSTUB_UART, false);
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
    if (__atomic_load_n(&gdbstub_halting, __ATOMIC_ACQUIRE) && __atomic_load_n(&owner, __ATOMIC_ACQUIRE) != this_cpu()->index + 1)
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
        if (percpu_kick_needs_nmi(t))
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
    for (u32 i = 0; i < cpu_count; i++)     /* not one awaiting a step alone: it leaves after that step's stop */
        if (i != me->index && __atomic_load_n(&gdbstub_frames[i], __ATOMIC_ACQUIRE) &&
            !__atomic_load_n(&awaiting_step[i], __ATOMIC_ACQUIRE))
            parked |= 1ull << i;
    __atomic_add_fetch(&release_gen, 1, __ATOMIC_ACQ_REL);
    u64 deadline = deadline_after_ms(PARK_TIMEOUT_MS);
    for (u32 i = 0; i < cpu_count; i++)
        while ((parked >> i & 1) && __atomic_load_n(&gdbstub_frames[i], __ATOMIC_ACQUIRE) && !deadline_passed(deadline))
            cpu_relax();
}

/*
 * Serve gdb until it resumes (with TF set in the frame of the CPU gdb steps) or ends the run. A CPU
 * parked by a kick (park.S's frame, vector 2) resumes through POPFQ; RET with TF set, so its first
 * #DB comes before the parked instruction ran: after the RET, on the parked RIP (SDM Vol. 3A 17.3.1.4;
 * seen so under QEMU). Traps are skipped (stepping 2) until one lands on the parked RIP, so an
 * emulator that trapped after the POPFQ too would still step right; the next one ends the step.
 */
static enum gdb_action serve(struct percpu *me, u8 signal, enum gdb_stop_why why, u64 data_addr)
{
    enum gdb_action act = gdb_stub_stopped(&stub, me->index, signal, why, data_addr);
    if (act != GDB_ACT_STEP)
        return act;
    u32 cpu = stub.step_cpu < cpu_count ? stub.step_cpu : me->index;
    struct exception_frame *f = gdbstub_frames[cpu];
    if (!f)
        f = gdbstub_frames[cpu = me->index];   /* a thread gone meanwhile: step the stopping CPU */
    f->rflags |= X86_RFLAGS_TF;
    stepping[cpu] = f->vector == 2 ? 2 : 1;
    step_from[cpu] = f->rip;
    if (stub.step_alone)
        __atomic_store_n(&step_alone_cpu, cpu + 1, __ATOMIC_RELEASE);
    return act;
}

/*
 * A debug-register hit (DR6.B0-B3, SDM Vol. 3B 18.2.3): which of gdb's slots, as a stop reason. False
 * for a slot gdb freed or changed since this CPU loaded it (a CPU parked mid-exit runs on with what it
 * loaded; debugregs.c): ignored, an instruction breakpoint's fault resumed past with RF (18.3.1.1).
 */
static bool hw_hit(u64 dr6, struct exception_frame *f, enum gdb_stop_why *why, u64 *data_addr)
{
    u32 slot = (u32)__builtin_ctzll(dr6 & X86_DR6_B0_3);
    u8 type = stub.hw.type[slot];
    if (!type || !gdbstub_dr_slot_current(slot)) {
        f->rflags |= X86_RFLAGS_RF;
        return false;
    }
    *why = type == GDB_HW_EXEC ? GDB_STOP_HWBREAK : type == GDB_HW_WRITE ? GDB_STOP_WATCH : GDB_STOP_AWATCH;
    *data_addr = stub.hw.addr[slot];
    return true;
}

bool gdbstub_exception(struct exception_frame *f)
{
    struct percpu *me = this_cpu();
    bool interrupt = false;
    enum gdb_stop_why why = GDB_STOP_SIGNAL;
    u64 data_addr = 0;
    if (f->vector == 3) {
        u64 at = f->rip - 1;
        interrupt = at == (u64)gdbstub_break_insn;
        if (gdb_stub_is_swbreak(&stub, at))
            why = GDB_STOP_SWBREAK;
        else if (!interrupt)
            return false;                   /* a stray int3: fatal as before */
        if (why == GDB_STOP_SWBREAK)
            f->rip = at;                    /* report it on the breakpoint; executed again after a park */
    } else {
        u64 dr6;
        __asm__ volatile("mov %%dr6, %0" : "=r"(dr6));
        if ((dr6 & X86_DR6_BS) && stepping[me->index]) {
            __asm__ volatile("mov %0, %%dr6" : : "r"(X86_DR6_INIT));
            if (stepping[me->index] == 2) { /* park.S's way out: TF stays set until the parked instruction ran */
                if (f->rip == step_from[me->index])
                    stepping[me->index] = 1;
                return true;
            }
            stepping[me->index] = 0;
            f->rflags &= ~X86_RFLAGS_TF;
        } else if (dr6 & X86_DR6_B0_3) {
            __asm__ volatile("mov %0, %%dr6" : : "r"(X86_DR6_INIT));
            if (!hw_hit(dr6, f, &why, &data_addr))
                return true;
        } else {
            return false;
        }
    }
    for (;;) {
        /*
         * Another CPU steps alone: this stop waits for that step's (parked: not kicked, its registers
         * readable), then for the resume after it. Looked at on every try, and again once the stub is
         * ours: a kick may have parked this CPU in the middle of the loop while a step alone began
         * (the kick's NMI interrupts this #DB handler). The stepping CPU takes the stub before it
         * clears step_alone_cpu, so park() sees it own the stub.
         */
        if (!interrupt && step_alone_other(me)) {
            __atomic_store_n(&awaiting_step[me->index], 1, __ATOMIC_RELEASE);
            __atomic_store_n(&gdbstub_frames[me->index], f, __ATOMIC_RELEASE);
            while (__atomic_load_n(&step_alone_cpu, __ATOMIC_ACQUIRE))
                cpu_relax();
            __atomic_store_n(&awaiting_step[me->index], 0, __ATOMIC_RELEASE);
            park(me, f);
            return true;
        }
        u32 none = 0;
        if (__atomic_compare_exchange_n(&owner, &none, me->index + 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            if (interrupt || !step_alone_other(me))
                break;
            __atomic_store_n(&owner, 0, __ATOMIC_RELEASE);     /* the step's stop comes first */
            continue;
        }
        if (none == me->index + 1)
            return false;                   /* a breakpoint inside the stub itself: fatal */
        /*
         * A step that ends while the previous stop's owner still releases the CPUs (it resumed us and
         * has not let go of the stub yet): wait for it, then report the step. Otherwise another CPU
         * stopped first: park (a breakpoint's int3 runs again after the resume; a step is superseded,
         * as gdb takes it when another thread's stop is reported).
         */
        if (f->vector == 1 && !__atomic_load_n(&gdbstub_halting, __ATOMIC_ACQUIRE)) {
            cpu_relax();
            continue;
        }
        park(me, f);
        return true;
    }
    __atomic_store_n(&step_alone_cpu, 0, __ATOMIC_RELEASE);     /* this is the stop a step alone waits for */
    __atomic_store_n(&gdbstub_frames[me->index], f, __ATOMIC_RELEASE);
    __atomic_store_n(&gdbstub_halting, 1, __ATOMIC_RELEASE);
    stop_others(me);
    gdb_uart_serving(gdbstub_port, true);
    enum gdb_action act = serve(me, interrupt ? GDB_SIGINT : GDB_SIGTRAP, why, data_addr);
    gdb_uart_serving(gdbstub_port, false);
    if (why == GDB_STOP_HWBREAK)
        f->rflags |= X86_RFLAGS_RF;         /* the instruction breakpoint is a fault: resume past it once */
    __atomic_store_n(&gdbstub_frames[me->index], 0, __ATOMIC_RELEASE);
    __atomic_store_n(&gdbstub_halting, 0, __ATOMIC_RELEASE);
    resume_others(me);
    __atomic_store_n(&owner, 0, __ATOMIC_RELEASE);
    if (unparked)           /* said now: while stopped, a parked CPU may hold the console lock */
        printk("gdbstub: CPUs not stopped within %u ms at the last stop (mask 0x%lx)\n", PARK_TIMEOUT_MS, unparked);
    if (act == GDB_ACT_KILL)    /* gdb's kill ends the machine, as it ends QEMU (after the resume: no CPU holds a lock) */
        hv_exit(HV_STATUS_PASS, "gdb_kill");
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
    if (o && o != pc->index + 1 && __atomic_load_n(&gdbstub_halting, __ATOMIC_ACQUIRE)) {
        gdbstub_park_here();
        return;
    }
    /* Every 256th exit of a CPU (percpu.gdb_polls_left): a port read is costly under TCG. */
    if (!o && !pc->gdb_polls_left && gdb_uart_ready(gdbstub_port))
        gdbstub_break();
}
