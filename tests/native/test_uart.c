/*
 * Host-side test of the gdb stub's UART layer (hv/core/gdbstub/uart.c) against a 16550 model: FIFOs
 * off while the guest runs, on while the stub serves gdb, and no received byte lost by a switch, which
 * clears the receiver (16550 data sheet, FCR bit 0: a change of FIFO mode clears both FIFOs). In 16450
 * mode the receiver holds one byte (a second one overruns it); with FIFOs, 16.
 */
#include <string.h>

#include <hv/gdb_uart.h>
#include <hv/uart_regs.h>

#include "check.h"

#define BASE 0x3e8

static struct {
    uint8_t rx[16];
    unsigned count;
    bool fifo;
    unsigned fcr_writes;
    uint8_t tx[64];
    unsigned tx_count;
} m;

static void arrive(uint8_t c)
{
    if (m.count < (m.fifo ? 16u : 1u))
        m.rx[m.count++] = c;
    else
        m.rx[m.count - 1] = c;          /* overrun: the newest byte replaces the last one held */
}

static void arrive_all(const char *s)
{
    while (*s)
        arrive((uint8_t)*s++);
}

uint8_t inb(uint16_t port)
{
    if (port == BASE + UART_LSR)
        return UART_LSR_THRE | (m.count ? UART_LSR_DR : 0);
    if (port == BASE && m.count) {
        uint8_t c = m.rx[0];
        memmove(m.rx, m.rx + 1, --m.count);
        return c;
    }
    return 0;
}

void outb(uint16_t port, uint8_t v)
{
    if (port == BASE + UART_FCR) {
        m.fcr_writes++;
        if ((bool)(v & 1) != m.fifo || (v & 2))
            m.count = 0;                /* a mode change (or RX reset) clears the receiver */
        m.fifo = v & 1;
    } else if (port == BASE && m.tx_count < sizeof(m.tx)) {
        m.tx[m.tx_count++] = v;
    }
}

void udelay(u64 us)
{
    (void)us;
}

static void *const ctx = (void *)(unsigned long)BASE;

/* What getc hands out while the stub is ready to read: the bytes in order, then nothing pending. */
static void expect_read(const char *want, const char *what)
{
    for (const char *p = want; *p; p++) {
        bool ready = gdb_uart_ready(BASE);
        CHECK(ready, "%s: byte %ld lost", what, (long)(p - want));
        if (!ready)
            return;                     /* getc would wait for it forever */
        int c = gdb_uart_getc(ctx);
        CHECK(c == (uint8_t)*p, "%s: byte %ld is 0x%02x, not 0x%02x", what, (long)(p - want), c, (uint8_t)*p);
    }
    CHECK(!gdb_uart_ready(BASE), "%s: more bytes than sent", what);
}

int main(void)
{
    /* The guest runs: FIFOs off, nothing pending. */
    gdb_uart_serving(BASE, false);
    CHECK(!m.fifo, "running with FIFOs on");
    CHECK(!gdb_uart_ready(BASE), "a byte out of nowhere");

    /* Ctrl-C while the guest runs, then the stop: the switch to FIFOs keeps it. */
    arrive(0x03);
    CHECK(gdb_uart_ready(BASE), "Ctrl-C not seen");
    gdb_uart_serving(BASE, true);
    CHECK(m.fifo, "serving with FIFOs off");
    arrive_all("$?#3f");                /* gdb's next packet, after the switch */
    expect_read("\x03$?#3f", "Ctrl-C kept across the switch to FIFOs");

    /* A resume with bytes still in the FIFOs (gdb's Ctrl-C right after its `c`): kept for the next stop. */
    arrive_all("+\x03");
    gdb_uart_serving(BASE, false);
    CHECK(!m.fifo, "resumed with FIFOs on");
    CHECK(m.count == 0, "the model's receiver was not cleared by the switch");
    expect_read("+\x03", "bytes kept across the switch off");

    /* A full FIFO at the switch: all 16 bytes come out, then what arrives later. */
    gdb_uart_serving(BASE, true);
    arrive_all("0123456789abcdef");
    gdb_uart_serving(BASE, false);
    arrive('g');
    expect_read("0123456789abcdefg", "a full FIFO kept, then a byte after the switch");

    /* Held bytes come before the receiver's, across several switches. */
    arrive('x');
    gdb_uart_serving(BASE, true);
    arrive('y');
    gdb_uart_serving(BASE, false);
    arrive('z');
    expect_read("xyz", "held bytes first, in order");

    /* Sending is untouched by the switches. */
    gdb_uart_putc(ctx, '+');
    CHECK(m.tx_count == 1 && m.tx[0] == '+', "putc wrote %u bytes", m.tx_count);
    CHECK(m.fcr_writes == 7, "%u FIFO control writes, one per switch", m.fcr_writes);
    return check_summary();
}
