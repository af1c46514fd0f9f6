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

#define HV_ABI_VERSION 1

/* Most logical processors the hypervisor brings up; more in the MADT is a reported failure. */
#define HV_MAX_CPUS 64

/*
 * Final status line. The hypervisor ends every run by printing exactly one line
 *     HVTRACE STATUS code=<decimal> result=<pass|fail> reason=<token>
 * on every console, then leaves the emulator: QEMU through isa-debug-exit at HV_DEBUG_EXIT_PORT
 * (QEMU's own exit status is then (code << 1) | 1), Bochs through a magic breakpoint (xchg bx,bx)
 * after which the debugger script quits.
 */
#define HV_STATUS_PREFIX "HVTRACE STATUS"
#define HV_DEBUG_EXIT_PORT 0xf4

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
#define HV_STATUS_MAX            63

#endif /* HV_ABI_H */
