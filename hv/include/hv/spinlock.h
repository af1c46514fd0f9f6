/* Test-and-test-and-set spinlock for rare, short host-side critical sections (console, pool). */
#ifndef HV_SPINLOCK_H
#define HV_SPINLOCK_H

#include <hv/x86.h>

typedef struct {
    volatile u32 locked;
} spinlock_t;

static inline void spin_lock(spinlock_t *l)
{
    while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED))
            cpu_relax();
}

static inline void spin_unlock(spinlock_t *l) { __atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE); }

#endif
