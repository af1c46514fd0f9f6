/*
 * Host-side driver of the MMIO decoder and emulator (hv/core/guest/mmio_decode.c, hv/core/guest/mmio_emul.c),
 * compiled from the hypervisor's own sources with a fake vcpu (vcpu.h), a fake device page at
 * 0xFEE00000 and 2 MiB of fake guest RAM. tests/unit/test_mmio_emul.py feeds it one case per line on
 * stdin and checks the one result line per case it prints.
 *
 * A case is space-separated key=value tokens (numbers in hex, without 0x):
 *   mode=decode|emul  bits=10|20|40 (hex, like every number)  bytes=<hex>  rip= rflags= cpl=  rax= ... r15=
 *   cs= ds= es= ss= fs= gs= (segment bases)  gpa= (the faulting GPA, default the device base)
 *   mem=ADDR:<hex> (guest RAM bytes at a physical address)  dev=OFF:<hex> (device bytes)
 *   map=LA:GPA (a 4 KiB page of the fake guest paging; identity below 2 MiB and for the device page)
 *   unmap=LA (a page not present)  devkind=reg32 (the device is a 32-bit register file, as the xAPIC)  peek=ADDR:LEN (RAM bytes to print afterwards)  devpeek=OFF:LEN
 * The code bytes go to guest RAM at CS.base + RIP (through the fake paging), unless mode=decode.
 * Result: "status=... key=value ..." (see print_result).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hv/mmio.h>

#define RAM_SIZE (2u << 20)
#define DEV_BASE 0xfee00000ull

static u8 ram[RAM_SIZE];
static u8 devmem[4096];

struct fake {
    struct vcpu v;
    u64 regs[16];
    u64 rip, rflags;
    u32 bits, cpl, advanced, injected;
    u64 seg[6];
};

static u64 f_rsp(struct vcpu *v) { return ((struct fake *)v)->regs[4]; }
static void f_set_rsp(struct vcpu *v, u64 x) { ((struct fake *)v)->regs[4] = x; }
static u64 f_rip(struct vcpu *v) { return ((struct fake *)v)->rip; }
static void f_set_rip(struct vcpu *v, u64 x) { ((struct fake *)v)->rip = x; }
static u64 f_rflags(struct vcpu *v) { return ((struct fake *)v)->rflags; }
static void f_set_rflags(struct vcpu *v, u64 x) { ((struct fake *)v)->rflags = x; }
static u32 f_insn_len(struct vcpu *v) { return (void)v, 0; }
static u64 f_advance(struct vcpu *v, u32 len)
{
    struct fake *f = (struct fake *)v;
    f->advanced += len;
    f->rip += len;
    if (f->bits != 64)
        f->rip = f->bits == 16 ? (u16)f->rip : (u32)f->rip;
    return f->rflags;
}
static u32 f_cpl(struct vcpu *v) { return ((struct fake *)v)->cpl; }
static u32 f_code_bits(struct vcpu *v) { return ((struct fake *)v)->bits; }
static u64 f_seg_base(struct vcpu *v, enum vcpu_seg s) { return ((struct fake *)v)->seg[s]; }
static void f_paging(struct vcpu *v, struct guest_paging *out) { (void)v, memset(out, 0, sizeof(*out)); }
static void f_inject(struct vcpu *v, const struct vcpu_event *e)
{
    (void)e;
    ((struct fake *)v)->injected++;     /* mmio_emulate must leave injection to its caller */
}
static void f_flush(struct vcpu *v) { (void)v; }

static const struct vcpu_ops fake_ops = {
    .rsp = f_rsp, .set_rsp = f_set_rsp, .rip = f_rip, .set_rip = f_set_rip, .rflags = f_rflags,
    .set_rflags = f_set_rflags, .insn_len = f_insn_len, .advance = f_advance, .cpl = f_cpl,
    .code_bits = f_code_bits, .seg_base = f_seg_base, .paging = f_paging, .inject = f_inject,
    .stage2_flush = f_flush,
};

/* --- fake guest paging and RAM (the guest_mem.h functions mmio_emul.c uses) ------------------- */

struct mapping {
    u64 la, gpa;
    bool present;
};
static struct mapping maps[32];
static unsigned nmaps;

bool guest_translate(const struct guest_paging *p, u64 linear, u64 *gpa)
{
    (void)p;
    u64 page = linear & ~0xfffull;
    for (unsigned i = 0; i < nmaps; i++) {
        if (maps[i].la == page) {
            if (!maps[i].present)
                return false;
            *gpa = maps[i].gpa | (linear & 0xfff);
            return true;
        }
    }
    if (linear < RAM_SIZE || page == DEV_BASE) {
        *gpa = linear;
        return true;
    }
    return false;
}

bool guest_read_phys(u64 gpa, void *out, u32 len)
{
    if (!len || gpa >= RAM_SIZE || len > RAM_SIZE - gpa)
        return false;
    memcpy(out, ram + gpa, len);
    return true;
}

bool guest_write_phys(u64 gpa, const void *in, u32 len)
{
    if (!len || gpa >= RAM_SIZE || len > RAM_SIZE - gpa)
        return false;
    memcpy(ram + gpa, in, len);
    return true;
}

/* --- fake device: byte array, every access logged ----------------------------------------------- */

static char devlog[4096];

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    size_t n = strlen(devlog);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(devlog + n, sizeof(devlog) - n, fmt, ap);
    va_end(ap);
}

/* devkind=reg32: the device is a 32-bit register file through mmio_reg32_read / _write_reaches,
 * the policy the xAPIC device of hv/core/guest/apic_emul.c uses; register reads logged as R:offset. */
static bool reg32_mode;

static u32 reg32_read32(void *ctx, u32 reg)
{
    (void)ctx;
    u32 v;
    if (reg & 15 || reg + 4 > sizeof(devmem))
        abort();
    memcpy(&v, devmem + reg, 4);
    logf_("%sR:%x", devlog[0] ? "," : "", reg);
    return v;
}

static bool dev_read(void *ctx, u32 off, u32 size, u64 *value)
{
    (void)ctx;
    if (reg32_mode) {
        *value = mmio_reg32_read(off, size, reg32_read32, NULL);
        return true;
    }
    if (off + size > sizeof(devmem))
        abort();        /* mmio_emulate promised an access inside the device */
    u64 v = 0;
    memcpy(&v, devmem + off, size);
    *value = v;
    logf_("%sr:%x:%u:%llx", devlog[0] ? "," : "", off, size, (unsigned long long)v);
    return true;
}

static bool dev_write(void *ctx, u32 off, u32 size, u64 value)
{
    (void)ctx;
    if (off + size > sizeof(devmem))
        abort();
    if (reg32_mode) {
        if (!mmio_reg32_write_reaches(off, size)) {
            logf_("%sdrop:%x:%u", devlog[0] ? "," : "", off, size);
            return true;
        }
        size = 4;
        value = (u32)value;
    }
    memcpy(devmem + off, &value, size);
    logf_("%sw:%x:%u:%llx", devlog[0] ? "," : "", off, size, (unsigned long long)value);
    return true;
}

/* --- the driver --------------------------------------------------------------------------------- */

static const char *const regname[16] = { "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                         "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15" };
static const char *const segname[6] = { "es", "cs", "ss", "ds", "fs", "gs" };
static const char *const status_name[] = { "done", "undecodable", "unsupported", "fault" };

static u64 hex(const char *s) { return strtoull(s, NULL, 16); }

static size_t hexbytes(const char *s, u8 *out, size_t max)
{
    size_t n = 0;
    while (s[0] && s[1] && n < max) {
        char b[3] = { s[0], s[1], 0 };
        out[n++] = (u8)strtoul(b, NULL, 16);
        s += 2;
    }
    return n;
}

static void print_bytes(const u8 *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

static void run_case(char *line)
{
    struct fake f = { .v = { &fake_ops, NULL, NULL, NULL }, .bits = 64, .rflags = 2 };
    u8 code[64];
    size_t ncode = 0;
    bool decode_only = false;
    u64 gpa = DEV_BASE;
    char *peeks[8], *devpeeks[8];
    unsigned npeek = 0, ndevpeek = 0;
    memset(ram, 0, sizeof(ram));
    memset(devmem, 0, sizeof(devmem));
    devlog[0] = 0;
    nmaps = 0;
    reg32_mode = false;
    f.v.gpr = f.regs;
    for (char *tok = strtok(line, " \t\n"); tok; tok = strtok(NULL, " \t\n")) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            printf("error=bad-token\n");
            return;
        }
        *eq = 0;
        const char *k = tok, *val = eq + 1;
        bool known = false;
        for (int i = 0; i < 16; i++)
            if (!strcmp(k, regname[i]))
                f.regs[i] = hex(val), known = true;
        for (int i = 0; i < 6; i++)
            if (!strcmp(k, segname[i]))
                f.seg[i] = hex(val), known = true;
        if (known)
            continue;
        if (!strcmp(k, "mode"))
            decode_only = !strcmp(val, "decode");
        else if (!strcmp(k, "bits"))
            f.bits = (u32)hex(val);
        else if (!strcmp(k, "bytes"))
            ncode = hexbytes(val, code, sizeof(code));
        else if (!strcmp(k, "rip"))
            f.rip = hex(val);
        else if (!strcmp(k, "rflags"))
            f.rflags = hex(val);
        else if (!strcmp(k, "cpl"))
            f.cpl = (u32)hex(val);
        else if (!strcmp(k, "devkind"))
            reg32_mode = !strcmp(val, "reg32");
        else if (!strcmp(k, "gpa"))
            gpa = hex(val);
        else if (!strcmp(k, "map") || !strcmp(k, "unmap")) {
            if (nmaps == sizeof(maps) / sizeof(maps[0]))
                abort();
            maps[nmaps].la = hex(val) & ~0xfffull;
            maps[nmaps].present = k[0] == 'm';
            maps[nmaps].gpa = k[0] == 'm' ? hex(strchr(val, ':') + 1) & ~0xfffull : 0;
            nmaps++;
        } else if (!strcmp(k, "mem")) {
            u64 at = hex(val);
            u8 buf[256];
            size_t n = hexbytes(strchr(val, ':') + 1, buf, sizeof(buf));
            if (at + n > RAM_SIZE)
                abort();
            memcpy(ram + at, buf, n);
        } else if (!strcmp(k, "dev")) {
            u64 at = hex(val);
            u8 buf[256];
            size_t n = hexbytes(strchr(val, ':') + 1, buf, sizeof(buf));
            if (at + n > sizeof(devmem))
                abort();
            memcpy(devmem + at, buf, n);
        } else if (!strcmp(k, "peek") && npeek < 8)
            peeks[npeek++] = eq + 1;
        else if (!strcmp(k, "devpeek") && ndevpeek < 8)
            devpeeks[ndevpeek++] = eq + 1;
        else {
            printf("error=unknown-key:%s\n", k);
            return;
        }
    }
    if (decode_only) {
        struct mmio_insn in;
        bool ok = mmio_decode(code, (u32)ncode, f.bits, &f.v, &in);
        printf("status=%s", ok ? "decoded" : "undecodable");
        if (ok)
            printf(" len=%u op=%u alu=%u size=%u src_size=%u addr=%u seg=%s lock=%u rep=%u has_reg=%u reg=%u "
                   "high8=%u has_imm=%u imm=%llx riprel=%u ea=%llx",
                   in.len, in.op, in.alu, in.size, in.src_size, in.addr_bits, segname[in.seg], in.lock, in.rep,
                   in.has_reg, in.reg, in.high8, in.has_imm, (unsigned long long)in.imm, in.rip_relative,
                   (unsigned long long)in.ea);
        printf("\n");
        return;
    }
    /* the code at CS.base + RIP, byte by byte through the fake paging */
    for (size_t i = 0; i < ncode; i++) {
        u64 la = f.bits == 64 ? f.rip + i : (u32)(f.seg[VCPU_CS] + f.rip + i), pa;
        if (guest_translate(NULL, la, &pa) && pa < RAM_SIZE)
            ram[pa] = code[i];
    }
    const struct mmio_dev dev = { .base = DEV_BASE, .length = 4096, .read = dev_read, .write = dev_write };
    struct mmio_result res;
    enum mmio_status st = mmio_emulate(&f.v, gpa, &dev, &res);
    printf("status=%s len=%u fetched=%u iters=%u advanced=%u rip=%llx rflags=%llx injected=%u", status_name[st],
           res.insn.len, res.fetched, res.iterations, f.advanced, (unsigned long long)f.rip,
           (unsigned long long)f.rflags, f.injected);
    for (int i = 0; i < 16; i++)
        printf(" %s=%llx", regname[i], (unsigned long long)f.regs[i]);
    if (st == MMIO_EMUL_FAULT)
        printf(" fault=%u:%u:%x:%llx", res.fault.vector, res.fault.has_error, res.fault.error,
               (unsigned long long)res.fault.cr2);
    printf(" devlog=%s", devlog[0] ? devlog : "-");
    for (unsigned i = 0; i < npeek; i++) {
        u64 at = hex(peeks[i]), n = hex(strchr(peeks[i], ':') + 1);
        if (at + n > RAM_SIZE)
            abort();
        printf(" peek%u=", i);
        print_bytes(ram + at, n);
    }
    for (unsigned i = 0; i < ndevpeek; i++) {
        u64 at = hex(devpeeks[i]), n = hex(strchr(devpeeks[i], ':') + 1);
        if (at + n > sizeof(devmem))
            abort();
        printf(" devpeek%u=", i);
        print_bytes(devmem + at, n);
    }
    printf("\n");
}

int main(void)
{
    static char line[8192];
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof(line), stdin))
        run_case(line);
    return 0;
}
