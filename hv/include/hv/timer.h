/* Time base: the TSC, calibrated once against PIT channel 2 (emulated time in QEMU and Bochs). */
#ifndef HV_TIMER_H
#define HV_TIMER_H

#include <hv/types.h>

void timer_calibrate(void);
u64 tsc_khz(void);
void udelay(u64 us);
/* TSC value 'ms' milliseconds from now, for polling loops with a timeout. */
u64 deadline_after_ms(u64 ms);
bool deadline_passed(u64 deadline);

#endif
