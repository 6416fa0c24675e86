/*
 * spin.h - a one-byte test-and-test-and-set lock for short critical
 * sections on slow paths (wait lists, free lists, the global queue).
 *
 * It is C11 <stdatomic.h> rather than ck_spinlock so that ThreadSanitizer
 * sees the acquire/release pairs and can reason about the data it guards.
 * Critical sections are a few pointer updates; a waiter spins, then yields
 * the CPU so that a preempted holder can finish.
 */
#ifndef TR_SPIN_H
#define TR_SPIN_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef struct tr__spin {
    atomic_bool held;
} tr__spin;

static inline void tr__spin_lock(tr__spin *s)
{
    for (unsigned spins = 0;; spins++) {
        /* Pairs with the release in tr__spin_unlock. */
        if (!atomic_exchange_explicit(&s->held, true, memory_order_acquire))
            return;
        while (atomic_load_explicit(&s->held, memory_order_relaxed)) {
            if (++spins > 64)
                sched_yield();
#if defined(__x86_64__)
            __builtin_ia32_pause();
#endif
        }
    }
}

static inline void tr__spin_unlock(tr__spin *s)
{
    atomic_store_explicit(&s->held, false, memory_order_release);
}

#endif
