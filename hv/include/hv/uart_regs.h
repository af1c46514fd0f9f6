/* The 16550 UART's registers the hypervisor uses (offsets from the port base) and their bits. */
#ifndef HV_UART_REGS_H
#define HV_UART_REGS_H

#define UART_FCR 2                  /* FIFO control (write) */
#define UART_LSR 5                  /* line status */
#define UART_LSR_DR 0x01            /* a received byte waits */
#define UART_LSR_THRE 0x20          /* the transmit holding register is empty */
#define UART_LSR_TEMT 0x40          /* the transmitter is idle */

#endif
