/* Guest INIT-SIPI emulation: see apic_emul.h. */
#include <hv/apic_emul.h>
#include <hv/abi.h>
#include <hv/apic_policy.h>
#include <hv/console.h>
#include <hv/fixup.h>
#include <hv/lapic.h>
#include <hv/mmio.h>
#include <hv/park.h>
#include <hv/stage2.h>
#include <hv/x86.h>

#define APIC_BASE_X2APIC (1ull << 10)
#define APIC_BASE_ENABLE (1ull << 11)
#define ICR_MODE(lo)      (((lo) >> 8) & 7)
#define ICR_MODE_INIT     5
#define ICR_MODE_STARTUP  6
#define ICR_TRIGGER_LEVEL (1u << 15)
#define ICR_SHORTHAND(lo) (((lo) >> 18) & 3)

enum ap_state { AP_PARKED, AP_WAIT_SIPI, AP_STARTING, AP_RUNNING };
/*
 * An INIT for a CPU that is still in the guest, until it leaves the guest and takes it. Kept apart from
 * ap_state: a SIPI right behind the INIT moves the state on to AP_RUNNING before the target has even
 * exited, and the target must still drop its old context (the IPIs of one sender arrive in order).
 */
static volatile u32 init_latched[HV_MAX_CPUS];
/* How many CPUs have an INIT latched: the inline apic_emul_take_init tests it before the CPU's own
 * entry (issue 18: one load on the common exit path instead of a call and a locked exchange). */
u32 apic_emul_init_latched;

/* Latch an INIT for CPU i; the count goes up once per latch, whoever latched it first. */
static void latch_init(u32 i)
{
    if (!__atomic_exchange_n(&init_latched[i], 1, __ATOMIC_ACQ_REL))
        __atomic_add_fetch(&apic_emul_init_latched, 1, __ATOMIC_RELEASE);
}

static u64 apic_page;
static bool tsc_deadline;      /* CPUID.01H:ECX[24]: the LVT timer's TSC-deadline mode exists (SDM 11.5.4.1) */
static volatile u32 icr_high[HV_MAX_CPUS];     /* each vCPU's xAPIC ICR high word, as the guest wrote it */
static volatile u32 ap_state[HV_MAX_CPUS];
static volatile u32 ap_vector[HV_MAX_CPUS];

/*
 * Read-only, not unmapped: guest reads go straight to the APIC, misaligned ones too. SDM Vol. 3A 11.4.1
 * leaves accesses that are not aligned 32-bit ones (or touch bytes 4-15 of a register) undefined / model
 * specific; no read reaches the hypervisor, so no read can stop it. The one emulator that stops on such
 * a read is Bochs (its APIC panics: the bochsrc sets that panic to "report", hvtrace/launch/bochs.py).
 * Measured: trapping reads too would add 65 exits to the 3304 xAPIC store exits of a 2-CPU Linux 6.1
 * boot to power-off under QEMU (+2%); on hardware where 11.4.1's "machine checks" are a risk, do that.
 */
bool apic_emul_init(struct stage2 *s)
{
    apic_page = rdmsr(MSR_APIC_BASE) & 0x000ffffffffff000ull;
    u32 a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    tsc_deadline = c & (1u << 24);
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

#define ICR_DEST_LOGICAL  (1u << 11)
#define APIC_REG_LDR      0xd0
#define APIC_REG_DFR      0xe0

/*
 * Each vCPU's xAPIC logical destination (LDR bits 31:24) and model (DFR bits 31:28), as the guest wrote
 * them: every store to the page traps, and goes on to the real APIC, which routes the IPIs that are not
 * emulated (fixed, NMI) by the same values. dfr_inv holds ~DFR so that zero is the reset value all ones
 * (SDM Vol. 3A 11.6.2.2). An emulated INIT does not reset the real APIC, so neither is reset here.
 */
static volatile u32 ldr[HV_MAX_CPUS];
static volatile u32 dfr_inv[HV_MAX_CPUS];

/* Logical destination mode (SDM Vol. 3A 11.6.2.2 xAPIC flat / cluster, 11.12.10.2 x2APIC). */
static bool logical_match(u32 i, const struct percpu *to, u32 dest, bool x2apic)
{
    if (x2apic) {
        /* broadcast (11.12.9), else logical ID = cluster (x2APIC ID[19:4]) << 16 | 1 << x2APIC ID[3:0] */
        if (dest == 0xffffffffu)
            return true;
        return (dest >> 16) == (to->apic_id >> 4) && (dest & (1u << (to->apic_id & 15)));
    }
    u32 mda = dest & 0xff, id = ldr[i] >> 24;
    if ((~dfr_inv[i] >> 28) == 0xf)
        return (id & mda) != 0;                         /* flat: one bit per APIC, 0xFF all of them */
    if (mda == 0xff)
        return true;                                    /* cluster: broadcast to every cluster */
    return (id >> 4) == (mda >> 4) && (id & mda & 0xf); /* cluster: MDA[7:4] cluster, [3:0] members */
}

static bool targets(const struct percpu *from, u32 i, u32 lo, u32 dest, bool x2apic)
{
    const struct percpu *to = cpus[i];
    switch (ICR_SHORTHAND(lo)) {
    case 0:
        if (lo & ICR_DEST_LOGICAL)
            return logical_match(i, to, dest, x2apic);
        /* physical: the APIC ID, or the broadcast ID (11.6.2.1 xAPIC 0xFF; 11.12.9 x2APIC 0xFFFFFFFF) */
        return to->apic_id == dest || dest == (x2apic ? 0xffffffffu : 0xffu);
    case 1:
        return false;   /* "self" is valid for fixed delivery only (11.6.1): no INIT / STARTUP to self */
    case 2:
        return true;
    default:
        return to != from;
    }
}

/*
 * An IPI of the hypervisor's own from 'pc', which runs the guest, to 't'. The real ICR high word is
 * the guest's in xAPIC mode (its stores to it go through): written back after the send.
 */
static void host_ipi(struct percpu *pc, const struct percpu *t, u32 lo)
{
    lapic_send_ipi(t->apic_id, lo);
    if (!(rdmsr(MSR_APIC_BASE) & APIC_BASE_X2APIC))
        mmio_write32(apic_page + APIC_REG_ICR_HI, icr_high[pc->index]);
}

/* INIT and STARTUP are emulated (true); every other delivery mode goes to the real APIC (false). */
static bool emulate_icr(struct percpu *pc, u32 lo, u32 dest, bool x2apic)
{
    u32 mode = ICR_MODE(lo);
    if (mode != ICR_MODE_INIT && mode != ICR_MODE_STARTUP)
        return false;
    /* INIT level de-assert (level trigger, assert bit clear) has no effect on xAPICs (SDM 11.6.1). */
    if (mode == ICR_MODE_INIT && (lo & ICR_TRIGGER_LEVEL) && !(lo & ICR_LEVEL_ASSERT))
        return true;
    for (u32 i = 0; i < cpu_count; i++) {
        struct percpu *t = cpus[i];
        if (!targets(pc, i, lo, dest, x2apic))
            continue;
        u32 state = __atomic_load_n(&ap_state[i], __ATOMIC_ACQUIRE);
        if (mode == ICR_MODE_INIT && state == AP_PARKED) {
            __atomic_store_n(&ap_state[i], AP_WAIT_SIPI, __ATOMIC_RELEASE);
            printk("guest: CPU %u sent INIT to CPU %u (APIC %u): waiting for SIPI\n", pc->index, i, t->apic_id);
        } else if (mode == ICR_MODE_INIT && state == AP_RUNNING &&
                   __atomic_compare_exchange_n(&ap_state[i], &state, AP_WAIT_SIPI, false, __ATOMIC_ACQ_REL,
                                               __ATOMIC_ACQUIRE)) {
            /*
             * INIT to a CPU that runs the guest (CPU offline / online): it leaves the guest at its next
             * exit and waits for SIPI (vcpu_exit_resume). An NMI IPI makes that exit happen now: NMIs
             * exit under both back ends, and the kick is not passed on to the guest (vcpu_nmi_arrived).
             */
            printk("guest: CPU %u sent INIT to running CPU %u (APIC %u): it waits for SIPI\n", pc->index, i,
                   t->apic_id);
            latch_init(i);              /* before the kick: the exit it causes sees the count */
            if (t != pc && percpu_kick_needs_nmi(t))
                host_ipi(pc, t, ICR_NMI);
        } else if (mode == ICR_MODE_STARTUP && state == AP_WAIT_SIPI &&
                   __atomic_compare_exchange_n(&ap_state[i], &state, AP_STARTING, false, __ATOMIC_ACQ_REL,
                                               __ATOMIC_ACQUIRE)) {
            /* The first STARTUP wins (compare-and-swap); a second one finds the CPU starting or running. */
            ap_vector[i] = lo & 0xff;
            __atomic_store_n(&ap_state[i], AP_RUNNING, __ATOMIC_SEQ_CST);
            if (park_claim(t))
                host_ipi(pc, t, PARK_WAKE_VECTOR);     /* it sleeps in park_wait */
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
    else if (offset == APIC_REG_LDR)
        ldr[pc->index] = value & 0xff000000u;
    else if (offset == APIC_REG_DFR)
        dfr_inv[pc->index] = ~(value | 0x0fffffffu);    /* bits 27:0 are reserved, read as ones */
    else if (offset == APIC_REG_ICR_LO && emulate_icr(pc, value, icr_high[pc->index] >> 24, false))
        return;
    mmio_write32(apic_page + offset, value);    /* the write the guest meant, on the real APIC */
}

bool apic_emul_x2apic_icr(struct vcpu *v, u64 value)
{
    struct percpu *pc = v->pc;
    /* The x2APIC MSRs exist only in x2APIC mode: in xAPIC mode a WRMSR to them is #GP (SDM Vol. 3A 11.12.1). */
    if (!(rdmsr(MSR_APIC_BASE) & APIC_BASE_X2APIC))
        return false;
    /* The xAPIC ICR low word's delivery-mode and vector checks (apic_policy.h): SMI, reserved modes and
     * vectors 0-15 send nothing (the reserved bits are left to the real WRMSR below: #GP). */
    struct apic_write_verdict w;
    apic_policy_write(APIC_REG_ICR_LO, 4, (u32)value, tsc_deadline, &w);
    if (w.action == APIC_WRITE_DROP) {
        if (v->rec)
            v->rec->flags |= HV_REC_SECURITY;
        static u32 reports;
        if (__atomic_fetch_add(&reports, 1, __ATOMIC_RELAXED) < 16)
            printk("CPU %u: x2APIC ICR write 0x%lx: %s (security)\n", pc->index, value, w.why);
        return true;
    }
    /* What is not emulated is written for real, under a fault fixup: reserved bits #GP the guest, not us. */
    return emulate_icr(pc, (u32)value, (u32)(value >> 32), true) || !safe_wrmsr(MSR_X2APIC_ICR, value);
}

u8 apic_emul_wait_sipi(struct percpu *pc)
{
    park_wait(pc, &ap_state[pc->index], AP_RUNNING);
    return (u8)ap_vector[pc->index];
}

/*
 * The guest's IA32_APIC_BASE.EN (global enable), per CPU: clearing it never reaches the real APIC. A
 * real APIC globally disabled takes no IPI (the hypervisor's NMI kicks and park wake-ups), routes the
 * 8259's INTR straight to the CPU (a parked CPU took its vector 8 for a #DF, chaos seed 1), and QEMU
 * 7.2 never enables it again. The guest's "disabled" APIC is the real one software-disabled instead
 * (SDM Vol. 3A 11.4.7.2: every LVT masked, no fixed interrupt accepted; NMI and INIT still are), and
 * enabling it again gives the state of 11.4.3: SVR at its reset value FFh, every LVT entry masked.
 * Deviations: the xAPIC window still answers and CPUID.01H:EDX.APIC still reads 1.
 */
static volatile u8 guest_apic_off[HV_MAX_CPUS];

u64 apic_emul_apic_base_read(struct percpu *pc)
{
    u64 real = rdmsr(MSR_APIC_BASE);
    return guest_apic_off[pc->index] ? real & ~(APIC_BASE_ENABLE | APIC_BASE_X2APIC) : real;
}

bool apic_emul_apic_base_write(struct percpu *pc, u64 value)
{
    /* Moving the xAPIC window would move it out of the read-only stage-2 page: refused with #GP. */
    if ((value & 0x000ffffffffff000ull) != apic_page)
        return false;
    u64 old = apic_emul_apic_base_read(pc);
    bool on = value & APIC_BASE_ENABLE, was_on = old & APIC_BASE_ENABLE;
    /* SDM Vol. 3A 11.12.5, Figure 11-27: EXTD without EN is invalid; x2APIC -> xAPIC only through disabled. */
    if ((!on && (value & APIC_BASE_X2APIC)) ||
        (on && was_on && (old & APIC_BASE_X2APIC) && !(value & APIC_BASE_X2APIC)))
        return false;
    u64 real = on ? value : (rdmsr(MSR_APIC_BASE) & ~APIC_BASE_X2APIC) | APIC_BASE_ENABLE | (value & ~0xc00ull);
    if (!on && (rdmsr(MSR_APIC_BASE) & APIC_BASE_X2APIC) && safe_wrmsr(MSR_APIC_BASE, real & ~APIC_BASE_ENABLE))
        return false;               /* x2APIC -> xAPIC on the real APIC: through disabled (Bochs; QEMU has none) */
    /* Reserved bits or an illegal mode change fault: reflected, never taken in the host. */
    if (safe_wrmsr(MSR_APIC_BASE, real))
        return false;
    if (!on || !was_on) {
        /* Software-disabled while off (LVTs masked by it, 11.4.7.2); back on: the reset state (11.4.3). */
        u32 lvt[LAPIC_LVT_MAX], n = lapic_lvt_regs(lvt);
        for (u32 i = 0; i < n; i++)
            lapic_write(lvt[i], LAPIC_LVT_MASKED);
        lapic_write_svr(on ? 0xff : lapic_read_svr() & ~LAPIC_SVR_ENABLE);
    }
    guest_apic_off[pc->index] = !on;
    return true;
}

void apic_emul_guest_store(struct vcpu *v, u32 offset, u32 size, u32 value)
{
    static u32 reports;
    struct apic_write_verdict w;
    apic_policy_write(offset, size, value, tsc_deadline, &w);
    if (w.security && v->rec) {
        v->rec->flags |= HV_REC_SECURITY;
        v->rec->gpa = apic_page + offset;   /* the store the policy changed (a step's record has no GPA) */
    }
    if (w.why && __atomic_fetch_add(&reports, 1, __ATOMIC_RELAXED) < 16)
        printk("CPU %u: APIC store of %u bytes 0x%x at offset 0x%x: %s%s\n", v->pc->index, size, value, offset,
               w.why, w.security ? " (security)" : "");
    if (w.action == APIC_WRITE_PASS)
        apic_emul_mmio_write(v->pc, offset, w.value);
}

/*
 * The xAPIC page as an MMIO device for mmio_emulate: reads come from the real APIC (partial reads from
 * the register, mmio_reg32_read), every write goes through the policy (apic_policy.h).
 */
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
    apic_emul_guest_store(ctx, offset, size, (u32)value);
    return true;
}

enum mmio_status apic_emul_guest_access(struct vcpu *v, u64 gpa, struct mmio_fault *fault)
{
    const struct mmio_dev dev = {
        .base = apic_page, .length = PAGE_SIZE, .ctx = v, .read = apic_dev_read, .write = apic_dev_write,
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
        printk("CPU %u: APIC access at GPA 0x%lx by an instruction hvtrace %s at RIP 0x%lx (%u bytes fetched: "
               "%02x %02x %02x %02x %02x %02x): executed against a copy of the page (apic_step.c)\n",
               v->pc->index, gpa, st == MMIO_EMUL_UNDECODABLE ? "does not decode" : "does not emulate",
               v->ops->rip(v), res.fetched,
               b[0], b[1], b[2], b[3], b[4], b[5]);
    }
    return st;
}

bool apic_emul_may_run_guest(u32 index)
{
    return __atomic_load_n(&ap_state[index], __ATOMIC_ACQUIRE) == AP_RUNNING ||
           __atomic_load_n(&init_latched[index], __ATOMIC_ACQUIRE);
}

bool apic_emul_take_init_latched(struct percpu *pc)
{
    if (!__atomic_exchange_n(&init_latched[pc->index], 0, __ATOMIC_ACQ_REL))
        return false;                   /* another CPU's INIT */
    __atomic_sub_fetch(&apic_emul_init_latched, 1, __ATOMIC_RELEASE);
    return true;
}

void apic_emul_init_arrived(struct percpu *pc)
{
    __atomic_store_n(&ap_state[pc->index], AP_WAIT_SIPI, __ATOMIC_RELEASE);
    latch_init(pc->index);
}

u64 apic_emul_page(void)
{
    return apic_page;
}
