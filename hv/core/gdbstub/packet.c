/*
 * gdb remote serial protocol framing (gdb manual, "Remote Protocol" / "Overview"): a packet is
 * $payload#cc, cc the modulo-256 sum of the payload bytes as sent, in two hex digits. Inside a
 * payload '}' escapes the next byte (sent XOR 0x20) and "c*n" repeats c n - 29 more times (gdb
 * never sends run lengths, but a stub must accept them; counts that would need '#' or '$' are
 * invalid). Every frame is acknowledged '+' or refused '-' until QStartNoAckMode.
 */
#include <hv/gdb_packet.h>

const char gdb_hexdigits[16] = "0123456789abcdef";

int gdb_hexval(u8 c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool gdb_parse_hex(const u8 **p, const u8 *end, u64 *value)
{
    const u8 *s = *p;
    u64 v = 0;
    u32 n = 0;
    for (; s < end && n < 16 && gdb_hexval(*s) >= 0; s++, n++)
        v = v << 4 | (u64)gdb_hexval(*s);
    *p = s;
    *value = v;
    return n > 0;
}

/* What reading one frame's body gave. */
enum frame_result { FRAME_OK, FRAME_BAD, FRAME_RESTART, FRAME_GONE };

/* The body after '$' up to and including the checksum; *len gets the decoded length (may exceed cap). */
static enum frame_result read_frame(struct gdb_link *l, u8 *buf, u32 cap, u32 *len)
{
    u32 n = 0;
    u8 sum = 0;
    int prev = -1;              /* the last decoded byte, what a run length repeats */
    bool bad = false;
    for (;;) {
        int c = l->getc(l->ctx);
        if (c < 0)
            return FRAME_GONE;
        if (c == '$')
            return FRAME_RESTART;           /* a new frame began: this one was cut short */
        if (c == '#')
            break;
        sum += (u8)c;
        if (c == '}') {
            int e = l->getc(l->ctx);
            if (e < 0)
                return FRAME_GONE;
            if (e == '$')
                return FRAME_RESTART;
            if (e == '#') {                 /* dangling escape */
                bad = true;
                break;
            }
            sum += (u8)e;
            c = e ^ 0x20;
        } else if (c == '*') {
            int r = l->getc(l->ctx);
            if (r < 0)
                return FRAME_GONE;
            if (r == '$')
                return FRAME_RESTART;
            if (r == '#') {
                bad = true;
                break;
            }
            sum += (u8)r;
            /* Counts are printable and skip '#' and '$' (gdb manual, "Run-length encoding"). */
            if (prev < 0 || r < 29 + 3 || r > 126) {
                bad = true;
                continue;
            }
            for (int k = 0; k < r - 29; k++, n++)
                if (n < cap)
                    buf[n] = (u8)prev;
            continue;
        }
        if (n < cap)
            buf[n] = (u8)c;
        n++;
        prev = c;
    }
    int hi = l->getc(l->ctx);
    if (hi < 0)
        return FRAME_GONE;
    int lo = l->getc(l->ctx);
    if (lo < 0)
        return FRAME_GONE;
    if (bad || gdb_hexval((u8)hi) < 0 || gdb_hexval((u8)lo) < 0 || (u8)(gdb_hexval((u8)hi) << 4 | gdb_hexval((u8)lo)) != sum)
        return FRAME_BAD;
    *len = n;
    return FRAME_OK;
}

int gdb_recv(struct gdb_link *l, u8 *buf, u32 cap)
{
    for (;;) {
        int c = l->getc(l->ctx);
        if (c < 0)
            return GDB_RX_GONE;
        if (c == 0x03)
            return GDB_RX_INTERRUPT;
        if (c != '$')
            continue;                       /* acks of our earlier packets, line noise */
        for (;;) {
            u32 len = 0;
            enum frame_result r = read_frame(l, buf, cap, &len);
            if (r == FRAME_RESTART)
                continue;
            if (r == FRAME_GONE)
                return GDB_RX_GONE;
            if (r == FRAME_BAD) {
                if (!l->no_ack)
                    l->putc(l->ctx, '-');
                break;                      /* await the next frame (gdb resends this one) */
            }
            if (!l->no_ack)
                l->putc(l->ctx, '+');
            if (len >= cap)
                return GDB_RX_TOO_LONG;     /* one byte is kept for the NUL */
            buf[len] = 0;
            return (int)len;
        }
    }
}

static void send_frame(struct gdb_link *l, const u8 *data, u32 len)
{
    u8 sum = 0;
    l->putc(l->ctx, '$');
    for (u32 i = 0; i < len; i++) {
        u8 c = data[i];
        if (c == '$' || c == '#' || c == '}' || c == '*') {
            l->putc(l->ctx, '}');
            sum += '}';
            c ^= 0x20;
        }
        l->putc(l->ctx, c);
        sum += c;
    }
    l->putc(l->ctx, '#');
    l->putc(l->ctx, (u8)gdb_hexdigits[sum >> 4]);
    l->putc(l->ctx, (u8)gdb_hexdigits[sum & 15]);
}

bool gdb_send(struct gdb_link *l, const u8 *data, u32 len)
{
    for (u32 tries = 0; tries < GDB_SEND_TRIES; tries++) {
        send_frame(l, data, len);
        if (l->no_ack)
            return true;
        for (;;) {
            int c = l->getc(l->ctx);
            if (c < 0)
                return false;
            if (c == '+')
                return true;
            if (c == '-')
                break;                      /* resend */
            if (c == 0x03)
                l->interrupt = true;
            /* anything else: noise before the ack */
        }
    }
    return false;
}
