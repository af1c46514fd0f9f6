/* Guest INIT-SIPI emulation: see apic_emul.h. */
#include <hv/apic_emul.h>
#include <hv/abi.h>
#include <hv/console.h>
#include <hv/lapic.h>
#include <hv/mmio.h>
#include <hv/stage2.h>
#include <hv/x86.h>

#define APIC_BASE_X2APIC (1ull << 10)
#define ICR_MODE(lo)      (((lo) >> 8) & 7)
#define ICR_MODE_INIT     5
#define ICR_MODE_STARTUP  6
#define ICR_TRIGGER_LEVEL (1u << 15)
#define ICR_SHORTHAND(lo) (((lo) >> 18) & 3)

enum ap_state { AP_PARKED, AP_WAIT_SIPI, AP_RUNNING };

static u64 apic_page;
static volatile u32 icr_high[HV_MAX_CPUS];     /* each vCPU's xAPIC ICR high word, as the guest wrote it */
static volatile u32 ap_state[HV_MAX_CPUS];
static volatile u32 ap_vector[HV_MAX_CPUS];

bool apic_emul_init(struct stage2 *s)
{
    apic_page = rdmsr(MSR_APIC_BASE) & 0x000ffffffffff000ull;
    ap_state[0] = AP_RUNNING;      /* the BSP runs the guest from the start */
    struct stage2_walk w;
    if (stage2_protect(s, apic_page, PAGE_SIZE, STAGE2_R) || stage2_walk(s, apic_page, &w))
        return false;
    printk("guest: xAPIC page 0x%lx mapped %c%c%c in the %s map (stores are emulated)\n", apic_page,
           w.perms & STAGE2_R ? 'r' : '-', w.perms & STAGE2_W ? 'w' : '-', w.perms & STAGE2_X ? 'x' : '-',
           s->ops->name);
    return true;
}

bool apic_emul_is_apic(u64 gpa)
{
    return apic_page && gpa - apic_page < PAGE_SIZE;
}

static bool targets(const struct percpu *from, const struct percpu *to, u32 lo, u32 dest)
{
    switch (ICR_SHORTHAND(lo)) {
    case 0:
        return to->apic_id == dest;
    case 1:
        return to == from;
    case 2:
        return true;
    default:
        return to != from;
    }
}

/* INIT and STARTUP are emulated (true); every other delivery mode goes to the real APIC (false). */
static bool emulate_icr(struct percpu *pc, u32 lo, u32 dest)
{
    u32 mode = ICR_MODE(lo);
    if (mode != ICR_MODE_INIT && mode != ICR_MODE_STARTUP)
        return false;
    /* INIT level de-assert (level trigger, assert bit clear) has no effect on xAPICs (SDM 11.6.1). */
    if (mode == ICR_MODE_INIT && (lo & ICR_TRIGGER_LEVEL) && !(lo & ICR_LEVEL_ASSERT))
        return true;
    for (u32 i = 0; i < cpu_count; i++) {
        struct percpu *t = cpus[i];
        if (!targets(pc, t, lo, dest))
            continue;
        u32 state = __atomic_load_n(&ap_state[i], __ATOMIC_ACQUIRE);
        if (mode == ICR_MODE_INIT && state == AP_PARKED) {
            __atomic_store_n(&ap_state[i], AP_WAIT_SIPI, __ATOMIC_RELEASE);
            printk("guest: CPU %u sent INIT to CPU %u (APIC %u): waiting for SIPI\n", pc->index, i, t->apic_id);
        } else if (mode == ICR_MODE_INIT) {
            printk("guest: CPU %u sent INIT to running CPU %u: not emulated, ignored\n", pc->index, i);
        } else if (state == AP_WAIT_SIPI) {
            ap_vector[i] = lo & 0xff;
            __atomic_store_n(&ap_state[i], AP_RUNNING, __ATOMIC_RELEASE);
            printk("guest: CPU %u sent SIPI vector 0x%x to CPU %u: it starts in real mode at 0x%x\n", pc->index,
                   lo & 0xff, i, (lo & 0xff) << 12);
        }   /* a STARTUP to a running or never-INITed CPU is ignored, as by hardware */
    }
    return true;
}

void apic_emul_mmio_write(struct percpu *pc, u32 offset, u32 value)
{
    if (offset == APIC_REG_ICR_HI)
        icr_high[pc->index] = value;
    else if (offset == APIC_REG_ICR_LO && emulate_icr(pc, value, icr_high[pc->index] >> 24))
        return;
    mmio_write32(apic_page + offset, value);    /* the write the guest meant, on the real APIC */
}

void apic_emul_x2apic_icr(struct percpu *pc, u64 value)
{
    if (!emulate_icr(pc, (u32)value, (u32)(value >> 32)))
        wrmsr(MSR_X2APIC_ICR, value);
}

u8 apic_emul_wait_sipi(struct percpu *pc, bool mwait)
{
    volatile u32 *state = &ap_state[pc->index];
    while (__atomic_load_n(state, __ATOMIC_ACQUIRE) != AP_RUNNING) {
        if (!mwait) {
            cpu_relax();
            continue;
        }
        /* Armed first, then checked: a store between the two still ends the MWAIT (SDM Vol. 2B MWAIT). */
        __asm__ volatile("monitor" : : "a"(state), "c"(0), "d"(0) : "memory");
        if (__atomic_load_n(state, __ATOMIC_ACQUIRE) != AP_RUNNING)
            __asm__ volatile("mwait" : : "a"(0), "c"(0) : "memory");
    }
    return (u8)ap_vector[pc->index];
}

bool apic_emul_apic_base_write(u64 value)
{
    /* Moving the xAPIC window would move it out of the read-only stage-2 page: refused with #GP. */
    if ((value & 0x000ffffffffff000ull) != apic_page)
        return false;
    wrmsr(MSR_APIC_BASE, value);
    return true;
}

/*
 * The xAPIC page as an MMIO device for mmio_emulate: reads come from the real APIC, aligned 32-bit
 * writes go to apic_emul_mmio_write; other sizes and offsets as mmio_reg32_read / _write_reaches
 * define them (mmio.h: partial reads from the register, dropped partial writes).
 */
static u32 dropped_reports;

static u32 apic_read32(void *ctx, u32 reg)
{
    (void)ctx;
    return (u32)mmio_read32(apic_page + reg);
}

static bool apic_dev_read(void *ctx, u32 offset, u32 size, u64 *value)
{
    *value = mmio_reg32_read(offset, size, apic_read32, ctx);
    return true;
}

static bool apic_dev_write(void *ctx, u32 offset, u32 size, u64 value)
{
    struct percpu *pc = ctx;
    if (mmio_reg32_write_reaches(offset, size)) {
        apic_emul_mmio_write(pc, offset, (u32)value);
        return true;
    }
    if (__atomic_fetch_add(&dropped_reports, 1, __ATOMIC_RELAXED) < 8)
        printk("CPU %u: APIC write of %u bytes at offset 0x%x dropped (only aligned 32-bit writes, SDM 11.4.1)\n",
               pc->index, size, offset);
    return true;
}

enum mmio_status apic_emul_guest_access(struct vcpu *v, u64 gpa, struct mmio_fault *fault)
{
    const struct mmio_dev dev = {
        .base = apic_page, .length = PAGE_SIZE, .ctx = v->pc, .read = apic_dev_read, .write = apic_dev_write,
    };
    struct mmio_result res;
    enum mmio_status st = mmio_emulate(v, gpa, &dev, &res);
    if (v->rec) {
        v->rec->arg0 = res.dev_offset;
        v->rec->arg1 = res.dev_value;
        v->rec->insn_len = (u8)res.insn.len;
    }
    if (st == MMIO_EMUL_FAULT) {
        *fault = res.fault;
    } else if (st != MMIO_EMUL_DONE) {
        u8 b[MMIO_INSN_MAX] = { 0 };
        memcpy(b, res.bytes, res.fetched);
        printk("CPU %u: APIC access at GPA 0x%lx by an instruction hvtrace %s (%u bytes fetched): "
               "%02x %02x %02x %02x %02x %02x\n", v->pc->index, gpa,
               st == MMIO_EMUL_UNDECODABLE ? "cannot decode" : "cannot emulate", res.fetched, b[0], b[1], b[2],
               b[3], b[4], b[5]);
    }
    return st;
}

/* ---- transitional entry for the back ends' current exit handlers (see apic_emul.h) ---- */
struct legacy_vcpu {
    struct vcpu v;
    const struct apic_store_exit *e;
    u64 rsp;
    u32 advanced;
};

#define LEGACY(v) ((struct legacy_vcpu *)(v))

static u64 legacy_rsp(struct vcpu *v) { return LEGACY(v)->rsp; }
static void legacy_set_rsp(struct vcpu *v, u64 value) { LEGACY(v)->rsp = value; }
static u64 legacy_rip(struct vcpu *v) { return LEGACY(v)->e->rip_linear; }
static void legacy_set_rip(struct vcpu *v, u64 value) { (void)v, (void)value; }
static u64 legacy_rflags(struct vcpu *v) { return (void)v, 2; }
static void legacy_set_rflags(struct vcpu *v, u64 value) { (void)v, (void)value; }
static u32 legacy_insn_len(struct vcpu *v) { return (void)v, 0; }
static void legacy_advance(struct vcpu *v, u32 len) { LEGACY(v)->advanced = len; }
static u32 legacy_cpl(struct vcpu *v) { return (void)v, 0; }
static u32 legacy_code_bits(struct vcpu *v) { return LEGACY(v)->e->long_mode ? 64 : 32; }
static u64 legacy_seg_base(struct vcpu *v, enum vcpu_seg seg) { return (void)v, (void)seg, 0; }
static void legacy_paging(struct vcpu *v, struct guest_paging *out) { *out = LEGACY(v)->e->paging; }
static void legacy_inject(struct vcpu *v, u32 type, u32 vector, bool has_error, u32 error)
{
    (void)v, (void)type, (void)vector, (void)has_error, (void)error;
}
static void legacy_flush(struct vcpu *v) { (void)v; }

static const struct vcpu_ops legacy_ops = {
    .rsp = legacy_rsp, .set_rsp = legacy_set_rsp, .rip = legacy_rip, .set_rip = legacy_set_rip,
    .rflags = legacy_rflags, .set_rflags = legacy_set_rflags, .insn_len = legacy_insn_len,
    .advance = legacy_advance, .cpl = legacy_cpl, .code_bits = legacy_code_bits, .seg_base = legacy_seg_base,
    .paging = legacy_paging, .inject = legacy_inject, .stage2_flush = legacy_flush,
};

u32 apic_emul_guest_store(struct percpu *pc, const struct apic_store_exit *e, u64 gpa, struct hv_record *rec)
{
    /* the frame the back end passes is the exit's own, writable register frame */
    struct legacy_vcpu lv = { .v = { &legacy_ops, pc, (u64 *)(uintptr_t)e->gpr, rec }, .e = e, .rsp = e->rsp };
    struct mmio_fault fault;
    if (apic_emul_guest_access(&lv.v, gpa, &fault) != MMIO_EMUL_DONE || lv.rsp != e->rsp)
        return 0;
    return lv.advanced;
}
