/*
 * gdb remote serial protocol, the packet layer (core/gdbstub/packet.c): $payload#cs framing with
 * +/- acknowledgements (none after QStartNoAckMode), '}' escapes and '*' run-length expansion on what
 * arrives, escapes on what leaves. Freestanding and byte-oriented: the same code runs on the
 * hypervisor's UART and in the host-side unit test (tests/native/test_gdbstub.c).
 */
#ifndef HV_GDB_PACKET_H
#define HV_GDB_PACKET_H

#include <hv/types.h>

/* The largest payload either side sends (advertised as PacketSize in qSupported). */
#define GDB_PACKET_MAX 4096

struct gdb_link {
    int (*getc)(void *ctx);             /* the next byte; waits for one. -1: the channel is gone */
    void (*putc)(void *ctx, u8 c);
    void *ctx;
    bool no_ack;                        /* QStartNoAckMode accepted: no '+'/'-' either way */
    bool interrupt;                     /* a 0x03 arrived while an acknowledgement was awaited */
};

enum {
    GDB_RX_GONE = -1,                   /* the channel ended inside or before a packet */
    GDB_RX_INTERRUPT = -2,              /* 0x03 (Ctrl-C) outside a packet */
    GDB_RX_TOO_LONG = -3,               /* a well-formed packet larger than the buffer: acked, dropped */
};

/*
 * The next packet's decoded payload into buf (at most cap bytes; NUL-terminated when shorter), its
 * length, or one of GDB_RX_*. Bytes outside a frame ('+', '-', noise) are skipped; a frame with a bad
 * checksum, a dangling escape or a bad run length is refused ('-' so gdb sends it again; silently
 * dropped in no-ack mode) and the next one is awaited.
 */
int gdb_recv(struct gdb_link *l, u8 *buf, u32 cap);
/* Send one packet (escaping $ # } *) and, unless no-ack, wait for '+' (resending on '-', up to
 * GDB_SEND_TRIES times). False: not acknowledged (the channel is gone or gdb kept refusing it). */
bool gdb_send(struct gdb_link *l, const u8 *data, u32 len);
#define GDB_SEND_TRIES 8

/* Hex helpers of the payloads. */
int gdb_hexval(u8 c);                   /* 0-15, or -1 */
extern const char gdb_hexdigits[16];
/* Parse hex digits at *p (at most 16); *p moves past them. False if there was no digit. */
bool gdb_parse_hex(const u8 **p, const u8 *end, u64 *value);

#endif
