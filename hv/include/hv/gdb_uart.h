/* The gdb stub's 16550 (core/gdbstub/uart.c): ctx of getc/putc is the port base. */
#ifndef HV_GDB_UART_H
#define HV_GDB_UART_H

#include <hv/types.h>

bool gdb_uart_ready(u16 base);      /* a received byte waits */
/* FIFOs on while the stub serves gdb, off while the guest runs (uart.c says why); no byte is lost. */
void gdb_uart_serving(u16 base, bool serving);
int gdb_uart_getc(void *ctx);
void gdb_uart_putc(void *ctx, u8 c);

#endif
