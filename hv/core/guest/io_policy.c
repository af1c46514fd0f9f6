/*
 * The loaded guest's I/O intercepts as a table (the policy, written once; both back ends call
 * io_policy_fill() to build their maps). A port is intercepted only when the hypervisor must see
 * the access to keep the run's promises:
 *   - ACPI PM1a_CNT (from the FADT, derived at guest load): a write with SLP_EN powers the machine
 *     off; the hypervisor ends the run with its exit counts and a status line (ACPI 6.4 4.8.3.2.1).
 *   - isa-debug-exit (HV_DEBUG_EXIT_PORT, HV_DEBUG_EXIT_SIZE ports, the convention of QEMU test
 *     kernels): the guest's own exit. Under QEMU the write would end the emulator with the guest's
 *     value where the hypervisor's status belongs; under Bochs no device answers. Intercepted, it ends
 *     the run on both back ends with reason=guest_debug_exit and the value as guest_code (guest_io.c).
 *   - hidden devices: the hypervisor's private channel (its console UART: COM2, or the command line's
 *     console=PORT,BAUD). The guest sees what an absent ISA device gives, so it can neither forge
 *     the hypervisor's status line nor disturb its UART: reads return all ones (nothing drives the
 *     bus), writes are dropped, and every access carries HV_REC_SECURITY in its exit record
 *     (guest_io.c). The gdb stub's UART (core/gdbstub, COM3 with gdbstub=1) is
 *     one more IO_POLICY_HIDDEN line.
 *   - port 0xE9 (Bochs' e9 hack, QEMU's debugcon): the hypervisor's record-frame stream (trace_e9=1)
 *     and a copy of its console. The guest's bytes there go to the guest's own console (COM1) instead,
 *     so no guest byte ever enters the frame stream; reads pass through (the e9 hack answers 0xE9).
 *   - ACPI SMI_CMD (from the FADT): a write raises a software SMI, synchronously (ACPI 6.4 5.2.9). The
 *     hypervisor performs the access itself, unchanged, so the SMI arrives in VMX root / SVM host mode
 *     and the firmware's RSM returns there. SMM entered from VMX non-root is meant to be invisible
 *     (SDM Vol. 3C 32.14.4), but Bochs 2.7's RSM sets CR0.PG, PE and NE on the guest whatever it
 *     held (it ignores unrestricted guest): a guest with paging off then runs with paging on and dies.
 *     Under SVM an SMI in guest mode is intercepted anyway (svm/exit.c); other SMI sources (chipset
 *     timers) still reach a VT-x guest directly.
 * Map format, the same for both back ends: one bit per port, bit (p % 8) of byte (p / 8), set = exit.
 *   VT-x: I/O bitmap A covers ports 0-0x7fff, B 0x8000-0xffff (SDM Vol. 3C 25.6.4); a multi-byte
 *   access exits if the bit of any port it covers is set (SDM Vol. 3C 26.1.3).
 *   SVM: the IOPM's first 64 Ki bits, one per port; a multi-byte access checks the bit of every
 *   port it covers (APM Vol. 2 15.10.1).
 * The hypervisor's own accesses (console, isa-debug-exit at the end of a run) happen in host mode:
 * never intercepted.
 */
#include <hv/abi.h>
#include <hv/cmdline.h>
#include <hv/console.h>
#include <hv/gdbstub.h>
#include <hv/guest.h>
#include <hv/io_policy.h>

struct io_intercept {
    enum io_policy_why why;
    u16 first;                  /* fixed first port, or 0 with 'derived' */
    const u16 *derived;         /* a port derived at guest load (0 there: none) */
    u16 count;                  /* ports from the first one */
};

static const struct io_intercept io_intercepts[] = {
    { IO_POLICY_POWER_OFF, 0, &guest.pm1a_cnt_port, 2 },                /* PM1a_CNT is 2 bytes wide */
    { IO_POLICY_DEBUG_EXIT, HV_DEBUG_EXIT_PORT, 0, HV_DEBUG_EXIT_SIZE },
    { IO_POLICY_HIDDEN, 0, &hv_options.console_port, 8 },               /* 16550: 8 registers */
    { IO_POLICY_HIDDEN, 0, &gdbstub_port, 8 },                          /* the gdb stub's UART (COM3), when on */
    { IO_POLICY_GUEST_CONSOLE, 0xe9, 0, 1 },
    { IO_POLICY_SMI_CMD, 0, &guest.smi_cmd_port, 1 },
};

static u16 first_port(const struct io_intercept *e)
{
    return e->derived ? *e->derived : e->first;
}

u32 io_policy_fill(u8 *map)
{
    u32 set = 0;
    for (u32 i = 0; i < sizeof(io_intercepts) / sizeof(io_intercepts[0]); i++) {
        const struct io_intercept *e = &io_intercepts[i];
        u32 first = first_port(e);
        if (!first)
            continue;
        for (u32 p = first; p < first + e->count && p <= 0xffff; p++, set++)
            map[p / 8] |= (u8)(1u << (p % 8));
    }
    return set;
}

u32 io_policy_whys(u16 port, u32 size)
{
    u32 whys = 0;
    for (u32 i = 0; i < sizeof(io_intercepts) / sizeof(io_intercepts[0]); i++) {
        const struct io_intercept *e = &io_intercepts[i];
        u32 first = first_port(e);
        if (first && port < first + e->count && (u32)port + size > first)
            whys |= IO_POLICY_BIT(e->why);
    }
    return whys;
}
