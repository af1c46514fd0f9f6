/* Kernel command line options (multiboot cmdline; QEMU -append, GRUB's multiboot line). */
#ifndef HV_CMDLINE_H
#define HV_CMDLINE_H

#include <hv/types.h>

enum fault_kind { FAULT_NONE, FAULT_UD, FAULT_GP, FAULT_PF, FAULT_DE };
enum entry_fault { ENTRY_FAULT_NONE, ENTRY_FAULT_CONTROL, ENTRY_FAULT_GUEST_STATE };

struct hv_options {
    enum fault_kind fault;      /* fault=ud|gp|pf|de: raise this exception in the hypervisor */
    i64 fault_cpu;              /* fault_cpu=N: on this CPU (default: the last one) */
    u32 ap_timeout_ms;          /* ap_timeout_ms=N: per-AP start-up timeout */
    bool hang;                  /* hang=1: spin forever after boot (tests the host's timeout) */
    /* entry_fault=control|guest_state: break the first VM entry on purpose (negative tests) */
    enum entry_fault entry_fault;
    /*
     * unhandled_exit_test=1: the negative test of the exit dispatcher. The back end intercepts one
     * instruction it has no handler for (SVM: RDPMC, exit code 0x6F) and the self-test guest executes
     * it after its steps on the last CPU; the hypervisor must reflect #UD and the run go on (issue 13).
     */
    bool unhandled_exit_test;
    u32 ring_capacity;          /* ring=N: records per CPU ring (a power of two); 0: sized from RAM */
    u32 ring_policy;            /* ring_policy=drop|overwrite: what a full ring nobody reads does */
    u32 ring_wait_s;            /* ring_wait=S: a full ring waits up to S s for its reader (0: never) */
    bool trace_e9;              /* trace_e9=1: also stream every record, framed, on port 0xE9 (Bochs) */
    bool storm;                 /* storm=1: after the self-test every CPU executes CPUID forever */
    u64 storm_iters;            /* storm_iters=N: ... N times instead, then the run ends (benchmarks) */
    bool storm_mix;             /* storm_mix=1: each storm round also an RDMSR (exit_path.py) */
    bool trace;                 /* trace=0: rings start disabled (exits are still counted) */
    /*
     * console=PORT,BAUD: the UART of the hypervisor's console and status line (default COM2 at 115200,
     * HV_CONSOLE_UART). PORT is com1..com4 or an I/O port in hex (a PCI serial card's); BAUD divides
     * 115200 (the 16550's divisor). For real machines, whose only UART may be COM1 or a card's.
     */
    u16 console_port;
    u32 console_baud;
    bool gdbstub;               /* gdbstub=1: the resident gdb stub on COM3 (core/gdbstub, issue 17) */
};

extern struct hv_options hv_options;
extern char hv_cmdline[256];

void cmdline_parse(const char *cmdline);

#endif
