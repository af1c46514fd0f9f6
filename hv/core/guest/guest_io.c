/*
 * The loaded guest's intercepted port I/O (the ports are core/guest/io_policy.c's table):
 *   - ACPI PM1a control (guest.pm1a_cnt_port): the hypervisor sees the guest power the machine off
 *     (SLP_EN, ACPI 6.4 4.8.3.2.1) and ends the run with its exit counts and a final status line
 *     instead of vanishing with the emulator;
 *   - isa-debug-exit (HV_DEBUG_EXIT_PORT..+HV_DEBUG_EXIT_SIZE-1): the guest's own exit, the convention
 *     of QEMU test kernels (QEMU would exit with (value << 1) | 1). The run ends with the hypervisor's
 *     own status (PASS: it did its job) and reason=guest_debug_exit; the guest's value travels apart,
 *     as guest_code, so it is never taken for the hypervisor's status;
 *   - hidden devices (the hypervisor's COM2): an absent device, byte lane by byte lane: reads give
 *     0xFF, writes are dropped (counted, and the first few named on the console);
 *   - port 0xE9: the guest's bytes go to its own console (console_guest_putc), never to the frames;
 *   - ACPI SMI_CMD (guest.smi_cmd_port): performed as is, but from host mode (io_policy.c says why).
 * An access that covers both a hidden / 0xE9 port and an ordinary one (e.g. OUTW to 0xE8) is done one
 * byte lane at a time, each lane as the policy says; every other access is performed on the real
 * port, unchanged.
 */
#include <hv/abi.h>
#include <hv/console.h>
#include <hv/guest.h>
#include <hv/io_policy.h>
#include <hv/percpu.h>
#include <hv/x86.h>

#define PM1_SLP_EN (1u << 13)

/*
 * Hidden-port reads and writes, and guest bytes on 0xE9 that were dropped. The console names the first
 * read and the first write (an OS probing legacy UARTs touches COM2 a few dozen times; every access
 * is in the trace as an I/O exit flagged HV_REC_SECURITY, exit_common.c).
 */
static u32 hidden_reads, hidden_writes, e9_dropped;

static void hidden_note(u16 port, bool write)
{
    if (__atomic_fetch_add(write ? &hidden_writes : &hidden_reads, 1, __ATOMIC_RELAXED) == 0)
        printk("guest: security: %s of hidden port 0x%x (the hypervisor's private channel): %s; further "
               "%ss are only recorded\n", write ? "write" : "read", port, write ? "dropped" : "reads 0xff",
               write ? "write" : "read");
}

#define HIDDEN IO_POLICY_BIT(IO_POLICY_HIDDEN)
#define GUEST_CONSOLE IO_POLICY_BIT(IO_POLICY_GUEST_CONSOLE)

/* The policy of byte lane 'port' of an access whose policy is 'whys': the same when it is one byte wide. */
static u32 lane_whys(u16 port, u32 size, u32 whys)
{
    return size == 1 ? whys : io_policy_whys(port, 1);
}

/* One byte lane of an access to a port the policy treats per byte (hidden, 0xE9). */
static void out_lane(u16 port, u8 value, u32 whys)
{
    if (whys & HIDDEN) {
        hidden_note(port, true);
    } else if (whys & GUEST_CONSOLE) {
        if (!console_guest_putc(value) && __atomic_fetch_add(&e9_dropped, 1, __ATOMIC_RELAXED) == 0)
            printk("guest: a byte written to port 0xe9 was dropped (COM1 busy, in divisor mode or the "
                   "hypervisor's fallback console)\n");
    } else {
        outb(port, value);
    }
}

static u8 in_lane(u16 port, u32 whys)
{
    if (whys & HIDDEN) {
        hidden_note(port, false);
        return 0xff;    /* no device decodes the port: the data lines float high */
    }
    return inb(port);
}

void guest_io_out(struct percpu *pc, u16 port, u32 size, u32 value, u32 whys)
{
    if (port == guest.pm1a_cnt_port && size >= 2 && (value & PM1_SLP_EN)) {
        printk("guest: CPU %u powers the machine off (ACPI PM1a_CNT 0x%x <- 0x%x, SLP_TYP %u)\n", pc->index, port,
               value, (value >> 10) & 7);
        pc->end_status = HV_STATUS_PASS;    /* the run ends once this exit is recorded (trace.c) */
        pc->end_reason = "guest_poweroff";
        return;
    }
    if (whys & IO_POLICY_BIT(IO_POLICY_DEBUG_EXIT)) {
        /* Any write to the device's ports, any size: QEMU's debug_exit_write() takes the value as is. */
        printk("guest: CPU %u: debug exit (isa-debug-exit port 0x%x, %u byte%s) code %u\n", pc->index, port, size,
               size == 1 ? "" : "s", value);
        pc->end_status = HV_STATUS_PASS;    /* the hypervisor's own status; once recorded (trace.c) */
        pc->end_reason = "guest_debug_exit";
        pc->end_has_guest_code = true;
        pc->end_guest_code = value;
        return;
    }
    if (whys & (HIDDEN | GUEST_CONSOLE)) {
        /* Byte lane i of the value goes to port + i (SDM Vol. 1, I/O Address Space: consecutive ports). */
        for (u32 i = 0; i < size; i++)
            out_lane((u16)(port + i), (u8)(value >> (8 * i)), lane_whys((u16)(port + i), size, whys));
        return;
    }
    if (size == 1)
        outb(port, (u8)value);
    else if (size == 2)
        outw(port, (u16)value);
    else
        outl(port, value);
}

u32 guest_io_in(u16 port, u32 size, u32 whys)
{
    if (whys & (HIDDEN | GUEST_CONSOLE)) {
        u32 value = 0;
        for (u32 i = 0; i < size; i++)
            value |= (u32)in_lane((u16)(port + i), lane_whys((u16)(port + i), size, whys)) << (8 * i);
        return value;
    }
    return size == 1 ? inb(port) : size == 2 ? inw(port) : inl(port);
}
