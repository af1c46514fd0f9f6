/*
 * Console: every byte goes to COM1 (16550 UART at 0x3F8) and to port 0xE9 (Bochs' e9 hack, QEMU's
 * debugcon). A message is formatted first and written under one lock, so lines from different CPUs
 * never interleave. A CPU that faults while holding the lock writes without it (console_depth).
 */
#include <hv/console.h>
#include <hv/percpu.h>
#include <hv/spinlock.h>
#include <hv/x86.h>

#define COM1 0x3f8
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40

static spinlock_t console_lock;
static bool uart_present;

void console_init(void)
{
    outb(COM1 + 1, 0x00);   /* no interrupts */
    outb(COM1 + 3, 0x80);   /* DLAB */
    outb(COM1 + 0, 0x01);   /* divisor 1: 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);   /* 8N1 */
    outb(COM1 + 2, 0xc7);   /* FIFO on, cleared */
    outb(COM1 + 4, 0x03);   /* DTR, RTS */
    /* No UART answers with 0xFF on every register: then only port 0xE9 carries the console. */
    uart_present = inb(COM1 + 5) != 0xff;
}

static void emit(char c)
{
    if (uart_present) {
        /* Bounded wait: a wedged UART must not hang a fatal path. */
        for (u32 spins = 0; !(inb(COM1 + 5) & UART_LSR_THRE) && spins < 1000000; spins++)
            cpu_relax();
        outb(COM1, (u8)c);
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
    for (u32 spins = 0; uart_present && !(inb(COM1 + 5) & UART_LSR_TEMT) && spins < 10000000; spins++)
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
