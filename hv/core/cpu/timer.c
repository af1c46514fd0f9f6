/*
 * TSC calibrated against PIT channel 2 (one-shot, mode 0, gate through port 0x61; Intel 8254 data
 * sheet). Both emulators drive the PIT from their own notion of time, so timeouts measured here are
 * in emulated time: a slow Bochs run does not trip them early. Under Bochs (clock: sync=none) TSC
 * and PIT both count emulated instructions at the nominal ips, so the rate found here is that ips
 * (5,001 kHz), not the rate in wall time: the host measures that itself (hvtrace/trace/tsc_rate.py).
 */
#include <hv/console.h>
#include <hv/timer.h>
#include <hv/x86.h>

#define PIT_HZ          1193182ull
#define CALIBRATE_MS    10
#define FALLBACK_KHZ    1000000ull      /* 1 GHz if the PIT never answers */

static u64 khz = FALLBACK_KHZ;

void timer_calibrate(void)
{
    u16 count = (u16)(PIT_HZ * CALIBRATE_MS / 1000);
    outb(0x61, (u8)((inb(0x61) & ~0x02) | 0x01));  /* speaker off, channel 2 gate on */
    outb(0x43, 0xb0);                                /* channel 2, lo/hi byte, mode 0, binary */
    outb(0x42, (u8)count);
    outb(0x42, (u8)(count >> 8));
    u64 start = rdtsc();
    u64 spins = 0;
    while (!(inb(0x61) & 0x20)) {                    /* OUT2 rises when the count reaches zero */
        if (++spins > 100000000ull) {
            printk("timer: PIT channel 2 never fired; assuming a %lu kHz TSC\n", khz);
            return;
        }
    }
    u64 ticks = rdtsc() - start;
    if (ticks >= CALIBRATE_MS)
        khz = ticks / CALIBRATE_MS;
    printk("timer: TSC %lu kHz (calibrated against the PIT)\n", khz);
}

u64 tsc_khz(void) { return khz; }

void udelay(u64 us)
{
    u64 end = rdtsc() + us * khz / 1000;
    while (rdtsc() < end)
        cpu_relax();
}

u64 deadline_after_ms(u64 ms) { return rdtsc() + ms * khz; }

bool deadline_passed(u64 deadline) { return rdtsc() >= deadline; }
