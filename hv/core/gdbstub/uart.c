/*
 * The stub's serial line: a 16550 polled without interrupts (the hypervisor takes none), programmed
 * like the console's (uart_init, core/lib/console.c: 115200 8N1, FIFOs). getc waits for a byte (a stopped system has nothing better to do); the line never
 * "ends": a gdb that went away is replaced by the next one that connects.
 */
#include <hv/gdb_uart.h>
#include <hv/timer.h>
#include <hv/x86.h>

#define UART_LSR 5
#define UART_LSR_DR 0x01
#define UART_LSR_THRE 0x20

bool gdb_uart_ready(u16 base)
{
    return inb(base + UART_LSR) & UART_LSR_DR;
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
