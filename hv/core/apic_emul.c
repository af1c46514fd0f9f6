/* Guest INIT-SIPI emulation: see apic_emul.h. */
#include <hv/apic_emul.h>
#include <hv/abi.h>
#include <hv/console.h>
#include <hv/lapic.h>
#include <hv/stage2.h>
#include <hv/x86.h>

#define APIC_BASE_X2APIC (1ull << 10)
#define ICR_MODE(lo)      (((lo) >> 8) & 7)
#define ICR_MODE_INIT     5
#define ICR_MODE_STARTUP  6
#define ICR_TRIGGER_LEVEL (1u << 15)
#define ICR_SHORTHAND(lo) (((lo) >> 18) & 3)

enum ap_state { AP_PARKED, AP_WAIT_SIPI, AP_STARTING, AP_RUNNING };

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
        } else if (mode == ICR_MODE_INIT && state == AP_RUNNING &&
                   __atomic_compare_exchange_n(&ap_state[i], &state, AP_WAIT_SIPI, false, __ATOMIC_ACQ_REL,
                                               __ATOMIC_ACQUIRE)) {
            /*
             * INIT to a CPU that runs the guest (CPU offline / online): it leaves the guest at its next
             * exit and waits for SIPI (vcpu_check_init). An NMI IPI makes that exit happen now: NMIs
             * exit under both back ends, and the kick is not passed on to the guest (vcpu_nmi_arrived).
             */
            printk("guest: CPU %u sent INIT to running CPU %u (APIC %u): it waits for SIPI\n", pc->index, i,
                   t->apic_id);
            if (t != pc) {
                __atomic_store_n(&t->kicked, 1, __ATOMIC_RELEASE);
                lapic_send_ipi(t->apic_id, ICR_NMI);
            }
        } else if (mode == ICR_MODE_STARTUP && state == AP_WAIT_SIPI &&
                   __atomic_compare_exchange_n(&ap_state[i], &state, AP_STARTING, false, __ATOMIC_ACQ_REL,
                                               __ATOMIC_ACQUIRE)) {
            /* The first STARTUP wins (compare-and-swap); a second one finds the CPU starting or running. */
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

u32 apic_emul_guest_store(struct percpu *pc, const struct apic_store_exit *e, u64 gpa, struct hv_record *rec)
{
    u8 insn[15] = { 0 };
    struct mmio_store st;
    u32 page_left = PAGE_SIZE - (u32)(e->rip_linear & (PAGE_SIZE - 1));
    /* all 15 bytes, or up to the end of the page when the next one is not mapped */
    if (!(guest_read_linear(&e->paging, e->rip_linear, insn, sizeof(insn)) ||
          guest_read_linear(&e->paging, e->rip_linear, insn, page_left < sizeof(insn) ? page_left : sizeof(insn))) ||
        !mmio_decode_store(insn, e->long_mode, &st)) {
        printk("CPU %u: APIC write at GPA 0x%lx by an instruction hvtrace cannot decode: %02x %02x %02x %02x\n",
               pc->index, gpa, insn[0], insn[1], insn[2], insn[3]);
        return 0;
    }
    u32 value = st.imm ? st.value : (u32)(st.reg == 4 ? e->rsp : e->gpr[st.reg]);
    u32 offset = (u32)(gpa & (PAGE_SIZE - 1));
    rec->arg0 = offset;
    rec->arg1 = value;
    rec->insn_len = (u8)st.len;
    apic_emul_mmio_write(pc, offset, value);
    return st.len;
}

bool apic_emul_init_pending(const struct percpu *pc)
{
    return __atomic_load_n(&ap_state[pc->index], __ATOMIC_ACQUIRE) == AP_WAIT_SIPI;
}

void apic_emul_init_arrived(struct percpu *pc)
{
    __atomic_store_n(&ap_state[pc->index], AP_WAIT_SIPI, __ATOMIC_RELEASE);
}

u64 apic_emul_page(void)
{
    return apic_page;
}
