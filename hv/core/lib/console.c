/*
 * Console: the hypervisor's private channel. Every byte goes to COM2 (16550 UART at 0x2F8), which
 * the loaded guest never sees (core/guest/io_policy.c hides it: reads give 0xFF as from an absent device,
 * writes are dropped), and to port 0xE9 (Bochs' e9 hack), which the guest cannot write either (its
 * bytes there go to its own console, core/guest/guest_io.c). COM1 belongs to the guest. A message is
 * formatted first and written under one lock, so lines from different CPUs never interleave. A CPU
 * that faults while holding the lock writes without it (console_depth).
 *
 * Without a UART at COM2 the console falls back to COM1 and says so on it: the output stays visible,
 * but it shares the guest's device, so host tools cannot tell its status line from the guest's (they
 * trust only COM2 and port 0xE9) and report no status.
 *
 * The command line's console=PORT,BAUD moves the console to another UART (a real machine's COM1, a
 * PCI card's ports) once it is parsed (console_configure); io_policy.c hides that UART instead.
 */
#include <hv/console.h>
#include <hv/percpu.h>
#include <hv/spinlock.h>
#include <hv/uart_regs.h>
#include <hv/x86.h>

static spinlock_t console_lock;
static u16 uart_base;           /* the UART the console uses (HV_CONSOLE_UART, or COM1), 0 if none */

bool uart_init(u16 base, u16 divisor)
{
    outb(base + 1, 0x00);   /* no interrupts */
    outb(base + 3, 0x80);   /* DLAB: registers 0 and 1 are the divisor latch */
    outb(base + 0, (u8)divisor);
    outb(base + 1, (u8)(divisor >> 8));
    outb(base + 3, 0x03);   /* 8N1 */
    outb(base + UART_FCR, 0xc7);    /* FIFO on, cleared */
    outb(base + 4, 0x03);   /* DTR, RTS */
    /* No device answers with 0xFF on every register (an ISA bus with nothing decoding the port). */
    return inb(base + UART_LSR) != 0xff;
}

void console_init(void)
{
    /*
     * COM1 is left programmed as before the private channel existed (115200 8N1, as firmware sets up
     * its console port): guests that write it without programming it (mbtest) rely on a sane word
     * length (after reset LCR selects 5-bit characters, and Bochs sends 5 bits of every byte).
     */
    bool com1 = uart_init(HV_GUEST_UART, 1);
    if (uart_init(HV_CONSOLE_UART, 1)) {
        uart_base = HV_CONSOLE_UART;
        return;
    }
    uart_base = com1 ? HV_GUEST_UART : 0;
    /* printk_unlocked: this runs before the per-CPU data printk's lock needs (cpu_bsp_init). */
    printk_unlocked("console: no UART at COM2 (0x%x): the hypervisor console shares COM1 with the guest, and host "
           "tools will not trust a status line there\n", HV_CONSOLE_UART);
}

void console_configure(u16 port, u32 baud)
{
    if (port == uart_base && baud == HV_CONSOLE_BAUD)
        return;     /* as console_init left it: reprogramming would clear the FIFO's pending bytes */
    console_flush();
    u16 old = uart_base;
    if (!uart_init(port, (u16)(HV_CONSOLE_BAUD / baud))) {
        printk("console: no UART at 0x%x (console=): the console stays at 0x%x\n", port, old);
        return;
    }
    printk("console: moving to the UART at 0x%x, %u baud 8N1 (console=)\n", port, baud);
    console_flush();
    uart_base = port;
    printk("console: UART at 0x%x, %u baud 8N1 (moved from 0x%x)\n", port, baud, old);
}

static void emit(char c)
{
    if (uart_base) {
        /* Bounded wait: a wedged UART must not hang a fatal path. */
        for (u32 spins = 0; !(inb(uart_base + UART_LSR) & UART_LSR_THRE) && spins < 1000000; spins++)
            cpu_relax();
        outb(uart_base, (u8)c);
    }
    outb(0xe9, (u8)c);
}

static void emit_string(const char *s)
{
    while (*s)
        emit(*s++);
}

void vprintk(const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    struct percpu *me = this_cpu();
    if (me->console_depth++ == 0)
        spin_lock(&console_lock);
    emit_string(buf);
    if (--me->console_depth == 0)
        spin_unlock(&console_lock);
}

void printk(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintk(fmt, ap);
    va_end(ap);
}

void printk_unlocked(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    emit_string(buf);
}

void console_flush(void)
{
    /* The emulated UART sends at its baud rate: wait until the shift register is empty. */
    for (u32 spins = 0; uart_base && !(inb(uart_base + UART_LSR) & UART_LSR_TEMT) && spins < 10000000; spins++)
        cpu_relax();
}

void console_write_e9(const void *data, size_t n)
{
    struct percpu *me = this_cpu();
    if (me->console_depth++ == 0)
        spin_lock(&console_lock);
    for (const u8 *p = data; n--; p++)
        outb(0xe9, *p);
    if (--me->console_depth == 0)
        spin_unlock(&console_lock);
}

bool console_guest_putc(u8 c)
{
    /*
     * A guest byte for its own console (written to port 0xE9): sent on COM1's transmit register, as
     * if the guest had written it there, when COM1 is a UART the hypervisor does not use and the
     * guest has it in data mode. With the divisor latch open (LCR.DLAB, 16550 datasheet: register 0
     * is then the divisor) or the transmitter busy, the byte is dropped: the guest's UART state is
     * never changed behind its back. Reading LSR can clear its error bits (OE/PE/FE/BI), as any
     * guest poll of LSR would.
     */
    if (uart_base == HV_GUEST_UART || inb(HV_GUEST_UART + 3) & 0x80)
        return false;
    for (u32 spins = 0; !(inb(HV_GUEST_UART + UART_LSR) & UART_LSR_THRE); spins++)
        if (spins >= 100000)
            return false;
    outb(HV_GUEST_UART, c);
    return true;
}
