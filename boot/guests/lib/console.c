/* The guests' COM1 console (guest.h). */
#include "guest.h"

/* Set once the UART stayed busy for a long time (absent, or stuck): then bytes go out without waiting. */
static int uart_stuck;

void console_init(void)
{
    outb(COM1 + 1, 0);      /* no interrupts */
    outb(COM1 + 3, 0x80);   /* DLAB: divisor 1 = 115200 baud */
    outb(COM1 + 0, 1);
    outb(COM1 + 1, 0);
    outb(COM1 + 3, 0x03);   /* 8N1 */
    outb(COM1 + 2, 0xc7);   /* FIFO on, cleared */
}

void putc(char c)
{
    /* LSR.THRE; a missing UART reads 0xff (THRE set) or never becomes ready: stop waiting then */
    for (u32 spins = 0; !uart_stuck && !(inb(COM1 + 5) & 0x20); spins++)
        if (spins > 1000000)
            uart_stuck = 1;
    outb(COM1, (u8)c);
}

void puts(const char *s)
{
    while (*s)
        putc(*s++);
}

static void hex_digits(u64 v, int digits, int skip_zeros)
{
    puts("0x");
    for (int i = 4 * (digits - 1); i >= 0; i -= 4) {
        u32 d = (u32)(v >> i) & 15;
        if (d || !skip_zeros || i == 0) {
            putc("0123456789abcdef"[d]);
            skip_zeros = 0;
        }
    }
}

void puthex(u64 v) { hex_digits(v, 16, 1); }
void puthex8(u32 v) { hex_digits(v, 8, 0); }
void puthex16(u64 v) { hex_digits(v, 16, 0); }

void putdec(u32 v)
{
    char buf[11];
    int n = 0;
    do
        buf[n++] = (char)('0' + v % 10);
    while ((v /= 10));
    while (n)
        putc(buf[--n]);
}

/* A label, then a value: one definition per value format. */
#define LABELLED(name, type, put)              \
    void name(const char *text, type v)        \
    {                                          \
        puts(text);                            \
        put(v);                                \
    }
LABELLED(puts_dec, u32, putdec)
LABELLED(puts_hex, u64, puthex)
LABELLED(puts_hex8, u32, puthex8)
LABELLED(puts_hex16, u64, puthex16)
