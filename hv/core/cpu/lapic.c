/* Local APIC: xAPIC through MMIO, or x2APIC through MSRs 0x800+ when the firmware enabled it. */
#include <hv/console.h>
#include <hv/lapic.h>
#include <hv/x86.h>

#define APIC_BASE_X2APIC   (1ull << 10)
#define APIC_BASE_ENABLE   (1ull << 11)
#define XAPIC_ID           0x20
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

u32 lapic_read_svr(void)
{
    return x2apic_mode() ? (u32)rdmsr(X2APIC_MSR(XAPIC_SVR)) : (u32)mmio_read32(mmio + XAPIC_SVR);
}

void lapic_write_svr(u32 value)
{
    if (x2apic_mode())
        wrmsr(X2APIC_MSR(XAPIC_SVR), value);
    else
        mmio_write32(mmio + XAPIC_SVR, value);
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
