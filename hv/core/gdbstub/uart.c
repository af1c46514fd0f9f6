/*
 * The stub's serial line: a 16550 polled without interrupts (the hypervisor takes none), programmed
 * like the console's (uart_init, core/lib/console.c: 115200 8N1). getc waits for a byte (a stopped
 * system has nothing better to do); the line never "ends": a gdb that went away is replaced by the next
 * one that connects.
 *
 * The FIFOs are on only while the stub serves gdb (gdb_uart_serving): while the guest runs the stub
 * needs one byte (Ctrl-C, or the first of a new gdb's packet) and the 16450 mode's holding register
 * keeps it. An emulated UART costs its emulator per byte time with the FIFO on: Bochs 2.7 then polls a
 * socket-attached port's socket at every byte time (a select() per 87 us of guest time at 115200 baud),
 * and with it off every 100 ms while nothing arrives: 7 % of a CPUID storm's exit rate (issue 17).
 */
#include <hv/gdb_uart.h>
#include <hv/timer.h>
#include <hv/uart_regs.h>
#include <hv/x86.h>

#define UART_FCR_ON 0x01                /* FIFOs on, receive trigger at 1 byte */
#define UART_FIFO_BYTES 16

/*
 * Bytes taken out of the receiver before a FIFO switch, which clears what the receiver holds (16550
 * data sheet, FCR bit 0). Only the CPU that runs the stub touches them; getc hands them out first.
 */
static u8 held[UART_FIFO_BYTES];
static u32 held_next, held_count;

bool gdb_uart_ready(u16 base)
{
    return held_count || (inb(base + UART_LSR) & UART_LSR_DR);
}

void gdb_uart_serving(u16 base, bool serving)
{
    while (held_count < UART_FIFO_BYTES && (inb(base + UART_LSR) & UART_LSR_DR))
        held[(held_next + held_count++) % UART_FIFO_BYTES] = inb(base);
    outb(base + UART_FCR, serving ? UART_FCR_ON : 0);
}

/*
 * Between two looks at LSR the CPU waits a little without touching the device: under QEMU every port
 * access takes the emulator's global lock, which the thread delivering the socket's bytes into the
 * UART needs too, and a CPU polling flat out starves it.
 */
static void between_polls(void)
{
    udelay(20);                         /* a byte takes 87 us at 115200 baud: nothing is missed */
}

int gdb_uart_getc(void *ctx)
{
    u16 base = (u16)(u64)ctx;
    if (held_count) {
        u8 c = held[held_next];
        held_next = (held_next + 1) % UART_FIFO_BYTES;
        held_count--;
        return c;
    }
    while (!gdb_uart_ready(base))
        between_polls();
    return inb(base);
}

void gdb_uart_putc(void *ctx, u8 c)
{
    u16 base = (u16)(u64)ctx;
    while (!(inb(base + UART_LSR) & UART_LSR_THRE))
        between_polls();
    outb(base, c);
}
