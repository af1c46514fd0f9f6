/*
 * The loaded guest's intercepted port I/O (the ports are core/io_policy.c's table):
 *   - ACPI PM1a control (guest.pm1a_cnt_port): the hypervisor sees the guest power the machine off
 *     (SLP_EN, ACPI 6.4 4.8.3.2.1) and ends the run with its exit counts and a final status line
 *     instead of vanishing with the emulator;
 *   - isa-debug-exit (HV_DEBUG_EXIT_PORT..+HV_DEBUG_EXIT_SIZE-1): the guest's own exit, the convention
 *     of QEMU test kernels (QEMU would exit with (value << 1) | 1). The run ends with the hypervisor's
 *     own status (PASS: it did its job) and reason=guest_debug_exit; the guest's value travels apart,
 *     as guest_code, so it is never taken for the hypervisor's status.
 * Every other access is performed on the real port, unchanged.
 */
#include <hv/abi.h>
#include <hv/console.h>
#include <hv/guest.h>
#include <hv/io_policy.h>
#include <hv/percpu.h>
#include <hv/x86.h>

#define PM1_SLP_EN (1u << 13)

void guest_io_out(struct percpu *pc, u16 port, u32 size, u32 value)
{
    if (port == guest.pm1a_cnt_port && size >= 2 && (value & PM1_SLP_EN)) {
        printk("guest: CPU %u powers the machine off (ACPI PM1a_CNT 0x%x <- 0x%x, SLP_TYP %u)\n", pc->index, port,
               value, (value >> 10) & 7);
        pc->end_status = HV_STATUS_PASS;    /* the run ends once this exit is recorded (trace.c) */
        pc->end_reason = "guest_poweroff";
        return;
    }
    if (io_policy_hits(IO_POLICY_DEBUG_EXIT, port, size)) {
        /* Any write to the device's ports, any size: QEMU's debug_exit_write() takes the value as is. */
        printk("guest: CPU %u: debug exit (isa-debug-exit port 0x%x, %u byte%s) code %u\n", pc->index, port, size,
               size == 1 ? "" : "s", value);
        pc->end_status = HV_STATUS_PASS;    /* the hypervisor's own status; once recorded (trace.c) */
        pc->end_reason = "guest_debug_exit";
        pc->end_has_guest_code = true;
        pc->end_guest_code = value;
        return;
    }
    if (size == 1)
        outb(port, (u8)value);
    else if (size == 2)
        outw(port, (u16)value);
    else
        outl(port, value);
}

u32 guest_io_in(u16 port, u32 size)
{
    return size == 1 ? inb(port) : size == 2 ? inw(port) : inl(port);
}
