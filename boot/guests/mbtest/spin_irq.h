/* mbtest's "spin_irq" mode (spin_irq.c): computes with interrupts on, no exit of its own; never returns. */
#ifndef MBTEST_SPIN_IRQ_H
#define MBTEST_SPIN_IRQ_H

__attribute__((noreturn)) void spin_irq_run(void);

#endif
