/* Local APIC: xAPIC through MMIO, or x2APIC through MSRs 0x800+ when the firmware enabled it. */
#include <hv/console.h>
#include <hv/lapic.h>
#include <hv/x86.h>

#define APIC_BASE_X2APIC   (1ull << 10)
#define APIC_BASE_ENABLE   (1ull << 11)
#define XAPIC_ID           0x20
#define XAPIC_VERSION      0x30
#define XAPIC_EOI          0xb0
#define XAPIC_SVR          0xf0
#define XAPIC_ICR_LO       0x300
#define XAPIC_ICR_HI       0x310
#define X2APIC_MSR(reg)    (0x800 + ((reg) >> 4))
#define ICR_DELIVERY_PENDING (1u << 12)

static u64 mmio;

/*
 * The mode is read each time: the APIC is this CPU's, and a guest may switch it to x2APIC mode
 * (IA32_APIC_BASE.EXTD, SDM Vol. 3A 11.12.1), after which the xAPIC window ignores writes.
 */
static bool x2apic_mode(void)
{
    return rdmsr(MSR_APIC_BASE) & APIC_BASE_X2APIC;
}

void lapic_init(u64 mmio_base)
{
    u64 base = rdmsr(MSR_APIC_BASE);
    if (!(base & APIC_BASE_ENABLE))
        wrmsr(MSR_APIC_BASE, base | APIC_BASE_ENABLE);
    mmio = mmio_base ? mmio_base : (base & ~0xfffull);
    lapic_write_svr(lapic_read_svr() | LAPIC_SVR_ENABLE);
}

u32 lapic_read(u32 reg)
{
    return x2apic_mode() ? (u32)rdmsr(X2APIC_MSR(reg)) : (u32)mmio_read32(mmio + reg);
}

void lapic_write(u32 reg, u32 value)
{
    if (x2apic_mode())
        wrmsr(X2APIC_MSR(reg), value);
    else
        mmio_write32(mmio + reg, value);
}

u32 lapic_read_svr(void)
{
    return lapic_read(XAPIC_SVR);
}

void lapic_write_svr(u32 value)
{
    lapic_write(XAPIC_SVR, value);
}

/* Local vector table entries this APIC has (SDM Vol. 3A 11.5.1; the version register's Max LVT Entry
 * is their count minus one: the performance, thermal and CMCI entries came in that order). */
u32 lapic_lvt_regs(u32 out[LAPIC_LVT_MAX])
{
    static const u32 always[] = { 0x320, 0x350, 0x360, 0x370 }, optional[] = { 0x340, 0x330, 0x2f0 };
    u32 max_lvt = (lapic_read(XAPIC_VERSION) >> 16) & 0xff, n = 0;
    for (u32 i = 0; i < ARRAY_SIZE(always); i++)
        out[n++] = always[i];
    for (u32 i = 0; i < ARRAY_SIZE(optional) && max_lvt >= 4 + i; i++)
        out[n++] = optional[i];
    return n;
}

u32 lapic_id(void)
{
    if (x2apic_mode())
        return (u32)rdmsr(X2APIC_MSR(XAPIC_ID));
    return (u32)mmio_read32(mmio + XAPIC_ID) >> 24;
}

bool lapic_send_ipi(u32 apic_id, u32 icr_lo)
{
    if (x2apic_mode()) {
        wrmsr(X2APIC_MSR(XAPIC_ICR_LO), ((u64)apic_id << 32) | icr_lo);
        return true;
    }
    mmio_write32(mmio + XAPIC_ICR_HI, apic_id << 24);
    mmio_write32(mmio + XAPIC_ICR_LO, icr_lo);
    for (u32 spins = 0; spins < 1000000; spins++)
        if (!(mmio_read32(mmio + XAPIC_ICR_LO) & ICR_DELIVERY_PENDING))
            return true;
    return false;
}

void lapic_eoi(void)
{
    if (x2apic_mode())
        wrmsr(X2APIC_MSR(XAPIC_EOI), 0);
    else
        mmio_write32(mmio + XAPIC_EOI, 0);
}
