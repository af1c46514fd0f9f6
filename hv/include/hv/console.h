/*
 * Console on the hypervisor's private channel: COM2 (hidden from the guest, core/guest/io_policy.c) and
 * port 0xE9; whole lines are written under one lock so CPUs never interleave.
 */
#ifndef HV_CONSOLE_H
#define HV_CONSOLE_H

#include <hv/types.h>

#define HV_CONSOLE_UART 0x2f8   /* COM2: the hypervisor's console and status line */
#define HV_GUEST_UART   0x3f8   /* COM1: the guest's console (the hypervisor's only as a fallback) */
#define HV_CONSOLE_BAUD 115200  /* the 16550's rate at divisor 1 (1.8432 MHz clock / 16) */

void console_init(void);
/* Move the console to the UART at ``port`` at ``baud`` (the command line's console=PORT,BAUD). */
void console_configure(u16 port, u32 baud);
/* Program a 16550 for 115200/divisor baud 8N1 without interrupts, FIFOs on; true if something answers
 * there (the console's UARTs and the gdb stub's, core/gdbstub). */
bool uart_init(u16 base, u16 divisor);
void printk(const char *fmt, ...) __printf(1, 2);
void vprintk(const char *fmt, va_list ap);
/* Emergency output: bypasses the lock (used on fatal paths where the lock may be held). */
void printk_unlocked(const char *fmt, ...) __printf(1, 2);
/* Wait until every byte written so far has left the UART (before the emulator is stopped). */
void console_flush(void);
/* Raw bytes to port 0xE9 only, under the console lock (record frames, core/trace/frame.c). */
void console_write_e9(const void *data, size_t n);
/* One byte the guest wrote to port 0xE9, onto its own console (COM1); false when dropped. */
bool console_guest_putc(u8 c);
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);

#endif
