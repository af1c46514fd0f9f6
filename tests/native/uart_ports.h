/*
 * test_uart's forced include: the stub's UART code (hv/core/gdbstub/uart.c) reaches the test's 16550
 * model through these, not the IN/OUT instructions of hv/portio.h, which it keeps out.
 */
#ifndef NATIVE_UART_PORTS_H
#define NATIVE_UART_PORTS_H
#define HV_PORTIO_H

#include <stdint.h>

uint8_t inb(uint16_t port);
void outb(uint16_t port, uint8_t v);

#endif
