/*
 * The resident gdb stub (issue 17): the hypervisor is the program gdb debugs, over a UART the guest
 * never sees (cmdline gdbstub=1: COM3, 0x3E8; hidden by core/guest/io_policy.c). Each CPU is a gdb
 * thread. A stop (a gdb breakpoint, a single step, or gdb's bytes noticed at an exit: Ctrl-C or a
 * new connection) halts every CPU in the hypervisor: the stopping CPU kicks the others with an NMI
 * and they park, their registers saved, until gdb resumes. core/gdbstub/stop.c.
 */
#ifndef HV_GDBSTUB_H
#define HV_GDBSTUB_H

#include <hv/exception_frame.h>
#include <hv/gdb_stub.h>
#include <hv/percpu.h>

#define GDBSTUB_UART 0x3e8          /* COM3 */

extern u16 gdbstub_port;            /* the stub's UART; 0: the stub is off */

void gdbstub_init(void);
/* #DB / #BP: true if the stub took it (a stop, a park, a step). */
bool gdbstub_exception(struct exception_frame *f);
/* The hypervisor kicked this CPU (NMI): park it if a stop is in progress. */
void gdbstub_kicked(void);
/* 1 while a stop halts the CPUs (stop.c): an exit parks its CPU if the kick has not. */
extern volatile u32 gdbstub_halting;
/* At an exit: now and then, look for gdb's bytes on the UART (Ctrl-C, a new connection). */
void gdbstub_poll(struct percpu *pc);
/* Every exit with the stub on: a countdown and a flag inline (+5 instructions a trip), the call when due. */
static inline void gdbstub_exit_poll(struct percpu *pc)
{
    if (__builtin_expect(gdbstub_port != 0, 0) && (!--pc->gdb_polls_left || gdbstub_halting))
        gdbstub_poll(pc);
}

/* core/gdbstub/debugregs.c: the stub's debug-register slots around each exit (Z1, Z2, Z4). */
extern volatile u64 gdbstub_dr7;        /* 0: no slot used */
void gdbstub_dr_set(const struct gdb_hw_slots *h);     /* the slots changed (every CPU is stopped) */
void gdbstub_dr_load(struct percpu *pc);
void gdbstub_dr_restore(struct percpu *pc);
bool gdbstub_dr_slot_current(u32 slot); /* this CPU holds the slot as gdb has it now */
/* The start of every exit: the stub's breakpoints armed for the hypervisor's exit path. */
static inline void gdbstub_dr_exit_begin(struct percpu *pc)
{
    if (__builtin_expect(gdbstub_dr7 != 0, 0))
        gdbstub_dr_load(pc);
}
/* Before the guest runs again (or restarts at INIT): the guest's DR0-DR3 and DR6 back. */
static inline void gdbstub_dr_exit_end(struct percpu *pc)
{
    if (__builtin_expect(pc->dr_swapped, 0))
        gdbstub_dr_restore(pc);
}

/* park.S */
void gdbstub_park_here(void);       /* park with this call's context (no IRET: NMIs stay blocked) */
void gdbstub_break(void);           /* an int3 the stub recognises: stop with SIGINT */
extern const u8 gdbstub_break_insn[];

#endif
