/*
 * The gdb remote protocol's commands (gdb manual, "Remote Protocol" / "Packets", "General Query
 * Packets", "Stop Reply Packets"), in all-stop mode: while this runs every CPU is stopped. Unknown
 * packets get the empty reply (gdb's "not supported"); a malformed one gets E01; memory that cannot
 * be read or written gets E14 (EFAULT).
 */
#include <hv/gdb_stub.h>

#define NREGS 59

/* Size in bytes of register n in the 'g' packet (target_xml.c lists them). */
static u32 reg_size(u32 n)
{
    if (n <= 16 || n == 57 || n == 58)
        return 8;
    if (n <= 23)
        return 4;                                   /* eflags, segment selectors */
    if (n <= 31)
        return 10;                                  /* st0-7 */
    if (n <= 39)
        return 4;                                   /* x87 control */
    if (n <= 55)
        return 16;                                  /* xmm0-15 */
    return 4;                                       /* mxcsr */
}

/* Where register n lives in struct gdb_regs, or 0 for the zero-shown ones (x87, SSE). */
static u64 *reg_slot(struct gdb_regs *r, u32 n)
{
    if (n < 16)
        return &r->gpr[n];
    if (n == 16)
        return &r->rip;
    if (n == 17)
        return &r->rflags;
    if (n <= 23)
        return &r->seg[n - 18];
    if (n == 57)
        return &r->fs_base;
    if (n == 58)
        return &r->gs_base;
    return 0;
}

struct out {
    u8 *p;
    u32 n, cap;
    bool sent;                  /* the reply already went out (QStartNoAckMode) */
};

static void put(struct out *o, u8 c)
{
    if (o->n < o->cap)
        o->p[o->n++] = c;
}

static void puts_(struct out *o, const char *s)
{
    while (*s)
        put(o, (u8)*s++);
}

static void put_hex8(struct out *o, u8 b)
{
    put(o, (u8)gdb_hexdigits[b >> 4]);
    put(o, (u8)gdb_hexdigits[b & 15]);
}

static void put_num(struct out *o, u64 v)
{
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = gdb_hexdigits[v & 15];
        v >>= 4;
    } while (v);
    while (n)
        put(o, (u8)tmp[--n]);
}

/* Register n, little-endian hex of its size. */
static void put_reg(struct out *o, struct gdb_regs *r, u32 n)
{
    u64 *slot = reg_slot(r, n);
    u64 v = slot ? *slot : 0;
    for (u32 i = 0; i < reg_size(n); i++)
        put_hex8(o, i < 8 ? (u8)(v >> (8 * i)) : 0);
}

/* Parse register n from hex at *p (little-endian); false if too short. */
static bool get_reg(const u8 **p, const u8 *end, struct gdb_regs *r, u32 n)
{
    u32 size = reg_size(n);
    if ((u64)(end - *p) < 2ull * size)
        return false;
    u64 v = 0;
    for (u32 i = 0; i < size; i++) {
        int hi = gdb_hexval((*p)[2 * i]), lo = gdb_hexval((*p)[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        if (i < 8)
            v |= (u64)(hi << 4 | lo) << (8 * i);
    }
    *p += 2 * size;
    u64 *slot = reg_slot(r, n);
    if (slot)
        *slot = size == 4 ? (u32)v : v;
    return true;
}

static bool starts(const u8 *in, u32 len, const char *prefix)
{
    u32 i = 0;
    for (; prefix[i]; i++)
        if (i >= len || in[i] != (u8)prefix[i])
            return false;
    return true;
}

static bool equals(const u8 *in, u32 len, const char *s)
{
    u32 i = 0;
    for (; s[i]; i++)
        if (i >= len || in[i] != (u8)s[i])
            return false;
    return i == len;
}

void gdb_stub_init(struct gdb_stub *s, const struct gdb_target_ops *ops, void *ctx)
{
    s->ops = ops;
    s->ctx = ctx;
    s->g_cpu = s->c_cpu = s->stop_cpu = 0;
    s->waiting = false;
    s->phys = false;
    s->link.no_ack = false;
    for (u32 i = 0; i < GDB_MAX_SWBREAK; i++)
        s->bp[i].used = false;
    s->hw = (struct gdb_hw_slots){ 0 };
}

bool gdb_stub_is_swbreak(const struct gdb_stub *s, u64 addr)
{
    for (u32 i = 0; i < GDB_MAX_SWBREAK; i++)
        if (s->bp[i].used && s->bp[i].addr == addr)
            return true;
    return false;
}

/* Breakpoints are written through the current mapping (hypervisor text), never physical mode. */
static bool bp_insert(struct gdb_stub *s, u64 addr)
{
    if (gdb_stub_is_swbreak(s, addr))
        return true;                                /* gdb may insert twice (conditions, threads) */
    for (u32 i = 0; i < GDB_MAX_SWBREAK; i++) {
        struct gdb_swbreak *b = &s->bp[i];
        if (b->used)
            continue;
        u8 int3 = 0xcc;
        if (s->ops->read_mem(s->ctx, addr, &b->saved, 1, false) != 1 ||
            s->ops->write_mem(s->ctx, addr, &int3, 1, false) != 1)
            return false;
        b->addr = addr;
        b->used = true;
        return true;
    }
    return false;
}

static bool bp_remove(struct gdb_stub *s, u64 addr)
{
    for (u32 i = 0; i < GDB_MAX_SWBREAK; i++) {
        struct gdb_swbreak *b = &s->bp[i];
        if (b->used && b->addr == addr) {
            b->used = false;
            return s->ops->write_mem(s->ctx, addr, &b->saved, 1, false) == 1;
        }
    }
    return true;                                    /* not ours: nothing to undo */
}

void gdb_stub_remove_all(struct gdb_stub *s)
{
    for (u32 i = 0; i < GDB_MAX_SWBREAK; i++)
        if (s->bp[i].used)
            bp_remove(s, s->bp[i].addr);
    s->hw = (struct gdb_hw_slots){ 0 };
    if (s->ops->hw_changed)
        s->ops->hw_changed(s->ctx, &s->hw);
}

static void stop_reply(struct gdb_stub *s, struct out *o)
{
    puts_(o, "T");
    put_hex8(o, s->stop_signal);
    puts_(o, "thread:");
    put_num(o, s->stop_cpu + 1);
    puts_(o, ";");
    static const char *const why[] = { [GDB_STOP_SWBREAK] = "swbreak", [GDB_STOP_HWBREAK] = "hwbreak",
                                       [GDB_STOP_WATCH] = "watch", [GDB_STOP_AWATCH] = "awatch" };
    if (s->stop_why == GDB_STOP_SIGNAL)
        return;
    puts_(o, why[s->stop_why]);
    put(o, ':');
    if (s->stop_why == GDB_STOP_WATCH || s->stop_why == GDB_STOP_AWATCH)
        put_num(o, s->stop_data_addr);
    put(o, ';');
}

/* A thread id as gdb sends it: N (CPU N-1), 0 (any), -1 (all); false when malformed or absent. */
static bool parse_thread(struct gdb_stub *s, const u8 *p, const u8 *end, u32 *cpu, bool *any)
{
    *any = false;
    if (p + 2 == end && p[0] == '-' && p[1] == '1') {
        *any = true;
        return true;
    }
    u64 tid;
    if (!gdb_parse_hex(&p, end, &tid) || p != end)
        return false;
    if (tid == 0) {
        *any = true;
        return true;
    }
    if (tid > s->ops->threads(s->ctx) || !s->ops->thread_alive(s->ctx, (u32)(tid - 1)))
        return false;
    *cpu = (u32)(tid - 1);
    return true;
}

/* "addr,len" then the separator sep (0: end of packet); false if malformed. */
static bool parse_addr_len(const u8 **p, const u8 *end, u64 *addr, u64 *len, u8 sep)
{
    if (!gdb_parse_hex(p, end, addr) || *p >= end || **p != ',')
        return false;
    (*p)++;
    if (!gdb_parse_hex(p, end, len))
        return false;
    if (sep)
        return *p < end && *(*p)++ == sep;
    return *p == end;
}

static void cmd_read_mem(struct gdb_stub *s, const u8 *p, const u8 *end, struct out *o)
{
    u64 addr, len;
    if (!parse_addr_len(&p, end, &addr, &len, 0)) {
        puts_(o, "E01");
        return;
    }
    if (len > (o->cap - 8) / 2)
        len = (o->cap - 8) / 2;                    /* answer what fits: gdb asks again for the rest */
    u8 chunk[64];
    u32 done = 0;
    while (done < len) {
        u32 want = len - done < sizeof(chunk) ? (u32)(len - done) : (u32)sizeof(chunk);
        u32 got = s->ops->read_mem(s->ctx, addr + done, chunk, want, s->phys);
        for (u32 i = 0; i < got; i++)
            put_hex8(o, chunk[i]);
        done += got;
        if (got < want)
            break;
    }
    if (!done && len) {
        o->n = 0;
        puts_(o, "E14");
    }
}

/* M (hex data) and X (binary data): the whole write or E14. */
static void cmd_write_mem(struct gdb_stub *s, const u8 *p, const u8 *end, struct out *o, bool binary)
{
    u64 addr, len;
    if (!parse_addr_len(&p, end, &addr, &len, ':') || (u64)(end - p) != (binary ? len : 2 * len)) {
        puts_(o, "E01");
        return;
    }
    u8 chunk[64];
    u64 done = 0;
    while (done < len) {
        u32 n = len - done < sizeof(chunk) ? (u32)(len - done) : (u32)sizeof(chunk);
        for (u32 i = 0; i < n; i++) {
            if (binary) {
                chunk[i] = p[done + i];
                continue;
            }
            int hi = gdb_hexval(p[2 * (done + i)]), lo = gdb_hexval(p[2 * (done + i) + 1]);
            if (hi < 0 || lo < 0) {
                puts_(o, "E01");
                return;
            }
            chunk[i] = (u8)(hi << 4 | lo);
        }
        if (s->ops->write_mem(s->ctx, addr + done, chunk, n, s->phys) != n) {
            puts_(o, "E14");
            return;
        }
        done += n;
    }
    puts_(o, "OK");
}

static void cmd_regs(struct gdb_stub *s, const u8 *p, const u8 *end, struct out *o, bool write)
{
    struct gdb_regs r;
    if (!s->ops->get_regs(s->ctx, s->g_cpu, &r)) {
        puts_(o, "E03");                            /* a CPU that never stopped in the hypervisor */
        return;
    }
    if (!write) {
        for (u32 n = 0; n < NREGS; n++)
            put_reg(o, &r, n);
        return;
    }
    for (u32 n = 0; n < NREGS && p < end; n++)
        if (!get_reg(&p, end, &r, n)) {
            puts_(o, "E01");
            return;
        }
    puts_(o, s->ops->set_regs(s->ctx, s->g_cpu, &r) ? "OK" : "E03");
}

static void cmd_one_reg(struct gdb_stub *s, const u8 *p, const u8 *end, struct out *o, bool write)
{
    u64 n;
    struct gdb_regs r;
    if (!gdb_parse_hex(&p, end, &n) || n >= NREGS || (write ? p >= end || *p++ != '=' : p != end)) {
        puts_(o, "E01");
        return;
    }
    if (!s->ops->get_regs(s->ctx, s->g_cpu, &r)) {
        puts_(o, "E03");
        return;
    }
    if (!write) {
        put_reg(o, &r, (u32)n);
        return;
    }
    if (!get_reg(&p, end, &r, (u32)n) || p != end) {
        puts_(o, "E01");
        return;
    }
    puts_(o, s->ops->set_regs(s->ctx, s->g_cpu, &r) ? "OK" : "E03");
}

/* qXfer:features:read:target.xml:OFF,LEN */
static void cmd_xfer_features(const u8 *p, const u8 *end, struct out *o)
{
    static const char annex[] = "target.xml:";
    u64 off, len;
    if (!starts(p, (u32)(end - p), annex)) {
        puts_(o, "E00");                            /* no such annex */
        return;
    }
    p += sizeof(annex) - 1;
    if (!parse_addr_len(&p, end, &off, &len, 0)) {
        puts_(o, "E01");
        return;
    }
    if (off >= gdb_target_xml_len) {
        puts_(o, "l");
        return;
    }
    u64 left = gdb_target_xml_len - off;
    u64 n = len < left ? len : left;
    if (n > o->cap - 8)
        n = o->cap - 8;
    put(o, n < left ? 'm' : 'l');
    for (u64 i = 0; i < n; i++)
        put(o, (u8)gdb_target_xml[off + i]);
}

/* qRcmd,HEX: the target's monitor command; its text comes back as one O packet, then OK. */
static void cmd_monitor(struct gdb_stub *s, const u8 *p, const u8 *end, struct out *o)
{
    static char cmd[512], text[2000];   /* one stub at a time; the O packet (2 hex digits a byte) fits */
    u32 n = 0;
    for (; p + 1 < end && n < sizeof(cmd) - 1; p += 2) {
        int hi = gdb_hexval(p[0]), lo = gdb_hexval(p[1]);
        if (hi < 0 || lo < 0)
            break;
        cmd[n++] = (char)(hi << 4 | lo);
    }
    cmd[n] = 0;
    if (p != end) {
        puts_(o, "E01");
        return;
    }
    text[0] = 0;
    if (!s->ops->monitor || !s->ops->monitor(s->ctx, s->g_cpu, cmd, text, sizeof(text))) {
        puts_(o, "E02");
        return;
    }
    if (text[0]) {                                  /* built in the reply buffer, sent, then OK */
        put(o, 'O');
        for (const char *c = text; *c; c++)
            put_hex8(o, (u8)*c);
        gdb_send(&s->link, o->p, o->n);
        o->n = 0;
    }
    puts_(o, "OK");
}

/*
 * vCont;ACTION[:TID];... : the first action naming a step decides the stepped CPU. A thread no action
 * applies to stays stopped: an action without a thread (or with -1 / 0) applies to all the others, so
 * a packet whose every action names one thread resumes only those (gdb steps over a breakpoint with
 * vCont;s:TID alone and takes no other thread's stop meanwhile).
 */
static bool cmd_vcont(struct gdb_stub *s, const u8 *p, const u8 *end, enum gdb_action *act)
{
    *act = GDB_ACT_CONTINUE;
    bool others_resume = false;
    while (p < end) {
        if (*p++ != ';' || p >= end)
            return false;
        u8 a = *p++;
        if (a == 'C' || a == 'S') {                 /* signals are not delivered to the hypervisor */
            u64 sig;
            if (!gdb_parse_hex(&p, end, &sig))
                return false;
        }
        u32 cpu = s->c_cpu;
        bool any = true;
        if (p < end && *p == ':') {
            const u8 *t = ++p;
            while (p < end && *p != ';')
                p++;
            if (!parse_thread(s, t, p, &cpu, &any))
                return false;
            if (any)
                cpu = s->stop_cpu;
        }
        others_resume |= any;
        if ((a == 's' || a == 'S') && *act != GDB_ACT_STEP) {
            *act = GDB_ACT_STEP;
            s->step_cpu = cpu;
        } else if (a != 'c' && a != 'C' && a != 's' && a != 'S' && a != 't') {
            return false;
        }
    }
    s->step_alone = *act == GDB_ACT_STEP && !others_resume;
    return true;
}

static void cmd_threads(struct gdb_stub *s, struct out *o)
{
    put(o, 'm');
    bool first = true;
    for (u32 cpu = 0; cpu < s->ops->threads(s->ctx); cpu++) {
        if (!s->ops->thread_alive(s->ctx, cpu))
            continue;
        if (!first)
            put(o, ',');
        first = false;
        put_num(o, cpu + 1);
    }
}

/* One packet; true with *act set when gdb resumed the target (or left). */
static bool dispatch(struct gdb_stub *s, const u8 *in, u32 len, struct out *o, enum gdb_action *act)
{
    const u8 *end = in + len;
    u32 cpu;
    bool any;
    if (!len)
        return false;
    switch (in[0]) {
    case '?':
        stop_reply(s, o);
        return false;
    case 'g':
        if (len != 1)
            break;
        cmd_regs(s, in + 1, end, o, false);
        return false;
    case 'G':
        cmd_regs(s, in + 1, end, o, true);
        return false;
    case 'p':
        cmd_one_reg(s, in + 1, end, o, false);
        return false;
    case 'P':
        cmd_one_reg(s, in + 1, end, o, true);
        return false;
    case 'm':
        cmd_read_mem(s, in + 1, end, o);
        return false;
    case 'M':
        cmd_write_mem(s, in + 1, end, o, false);
        return false;
    case 'X':
        cmd_write_mem(s, in + 1, end, o, true);
        return false;
    case 'Z':
    case 'z': {
        const u8 *p = in + 2;
        u64 addr, kind;
        if (len < 2 || in[1] < '0' || in[1] > '4' || (in[1] != '0' && !s->ops->hw_changed))
            break;                                  /* not supported (empty reply) */
        if (p >= end || *p++ != ',' || !parse_addr_len(&p, end, &addr, &kind, 0)) {
            puts_(o, "E01");
            return false;
        }
        if (in[1] == '0') {
            bool ok = in[0] == 'Z' ? bp_insert(s, addr) : bp_remove(s, addr);
            puts_(o, ok ? "OK" : "E14");
            return false;
        }
        u32 type = (u32)(in[1] - '0');
        int err = in[0] == 'Z' ? gdb_hw_insert(&s->hw, type, addr, kind) : gdb_hw_remove(&s->hw, type, addr, kind);
        if (err < 0)
            break;                                  /* Z3: x86 has no read-only watch */
        if (err) {
            put(o, 'E');
            put_hex8(o, (u8)err);
            return false;
        }
        s->ops->hw_changed(s->ctx, &s->hw);
        puts_(o, "OK");
        return false;
    }
    case 'c':
    case 's':
        /* c[ADDR] / s[ADDR]: resuming elsewhere is not supported (gdb never asks it of x86 stubs). */
        if (len != 1)
            break;
        *act = in[0] == 'c' ? GDB_ACT_CONTINUE : GDB_ACT_STEP;
        s->step_cpu = s->c_cpu;
        s->step_alone = false;
        return true;
    case 'H':
        if (len < 2 || (in[1] != 'g' && in[1] != 'c') || !parse_thread(s, in + 2, end, &cpu, &any)) {
            puts_(o, "E01");
            return false;
        }
        if (any)
            cpu = s->stop_cpu;
        if (in[1] == 'g')
            s->g_cpu = cpu;
        else
            s->c_cpu = cpu;
        puts_(o, "OK");
        return false;
    case 'T':
        puts_(o, parse_thread(s, in + 1, end, &cpu, &any) && !any ? "OK" : "E01");
        return false;
    case 'D':
        gdb_stub_remove_all(s);
        puts_(o, "OK");
        *act = GDB_ACT_DETACH;
        return true;
    case 'k':
        *act = GDB_ACT_KILL;
        return true;
    case 'v':
        if (equals(in, len, "vCont?")) {
            puts_(o, "vCont;c;C;s;S;t");
            return false;
        }
        if (starts(in, len, "vCont")) {
            if (!cmd_vcont(s, in + 5, end, act) || len == 5) {
                puts_(o, "E01");
                return false;
            }
            return true;
        }
        if (starts(in, len, "vKill")) {
            puts_(o, "OK");
            *act = GDB_ACT_KILL;
            return true;
        }
        break;                                      /* vMustReplyEmpty and the rest: empty */
    case 'q':
        if (starts(in, len, "qSupported")) {
            puts_(o, "PacketSize=");
            put_num(o, GDB_PACKET_MAX);
            puts_(o, ";qXfer:features:read+;QStartNoAckMode+;swbreak+;vContSupported+");
            if (s->ops->hw_changed)
                puts_(o, ";hwbreak+");
        } else if (starts(in, len, "qXfer:features:read:")) {
            cmd_xfer_features(in + 20, end, o);
        } else if (equals(in, len, "qfThreadInfo")) {
            cmd_threads(s, o);
        } else if (equals(in, len, "qsThreadInfo")) {
            puts_(o, "l");
        } else if (equals(in, len, "qC")) {
            puts_(o, "QC");
            put_num(o, s->g_cpu + 1);
        } else if (starts(in, len, "qAttached")) {
            puts_(o, "1");                          /* attached to a running system: detach leaves it running */
        } else if (equals(in, len, "qqemu.PhyMemMode")) {
            puts_(o, s->phys ? "1" : "0");
        } else if (starts(in, len, "qRcmd,")) {
            cmd_monitor(s, in + 6, end, o);
        }
        return false;
    case 'Q':
        if (equals(in, len, "QStartNoAckMode")) {
            puts_(o, "OK");
            gdb_send(&s->link, o->p, o->n);         /* acknowledged in the old mode, then none */
            o->sent = true;
            s->link.no_ack = true;
            return false;
        }
        if (equals(in, len, "Qqemu.PhyMemMode:1") || equals(in, len, "Qqemu.PhyMemMode:0")) {
            s->phys = in[len - 1] == '1';
            puts_(o, "OK");
            return false;
        }
        return false;
    default:
        break;
    }
    return false;
}

enum gdb_action gdb_stub_stopped(struct gdb_stub *s, u32 cpu, u8 signal, enum gdb_stop_why why, u64 data_addr)
{
    s->stop_cpu = s->g_cpu = s->c_cpu = cpu;
    s->stop_signal = signal;
    s->stop_why = (u8)why;
    s->stop_data_addr = data_addr;
    struct out o = { s->out, 0, sizeof(s->out), false };
    if (s->waiting) {
        stop_reply(s, &o);
        gdb_send(&s->link, o.p, o.n);
        s->waiting = false;
    }
    for (;;) {
        int n = gdb_recv(&s->link, s->in, sizeof(s->in));
        o.n = 0;
        o.sent = false;
        if (n == GDB_RX_GONE) {
            gdb_stub_remove_all(s);
            return GDB_ACT_GONE;
        }
        if (n == GDB_RX_INTERRUPT)
            continue;                               /* already stopped */
        if (n == GDB_RX_TOO_LONG) {
            puts_(&o, "E01");
            gdb_send(&s->link, o.p, o.n);
            continue;
        }
        enum gdb_action act = GDB_ACT_CONTINUE;
        bool resume = dispatch(s, s->in, (u32)n, &o, &act);
        if (!o.sent && (!resume || o.n))
            gdb_send(&s->link, o.p, o.n);           /* an empty reply is "not supported" */
        if (!resume)
            continue;
        if (act == GDB_ACT_KILL)
            gdb_stub_remove_all(s);
        if (act == GDB_ACT_DETACH || act == GDB_ACT_KILL)
            s->link.no_ack = false;                 /* a new gdb starts with acknowledgements */
        s->waiting = act == GDB_ACT_CONTINUE || act == GDB_ACT_STEP;
        return act;
    }
}
