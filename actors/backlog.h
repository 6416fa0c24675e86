/*
 * backlog.h - a bound on the actors that threads outside the system have
 * made runnable and that no worker has taken yet.
 *
 * Overview: a thread that is not a worker can spawn loop actors faster
 * than the workers start them (about 8 million a second against 5 on the
 * two cores here).  Unchecked, the outside queue then grew to 300,000
 * actors, 100 MB that no cache holds, and the workers slowed down to the
 * speed of memory while they drained it.  So such a spawn waits while more
 * than `high` actors wait in the outside queue, until the workers have
 * brought them down to `low`: backpressure on spawning, as a full mailbox
 * is on sending.  Everything made runnable from outside counts, actors
 * woken by a thread's sends too, but only spawns wait.  Workers never
 * wait here; neither do sends, whose actors are bounded by their
 * mailboxes.
 *
 * Pushes and takes are counted on lines of their own (by the pushers, and
 * by the taker under the outside queue's try-lock).  A waiting spawner
 * posts the count of takes it waits for in `wake_at` and sleeps on it;
 * the take that reaches it clears the word and wakes every sleeper.
 */
#ifndef TR_BACKLOG_H
#define TR_BACKLOG_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "fence.h"
#include "futex.h"

typedef struct tr__backlog {
    _Atomic uint32_t pushed __attribute__((aligned(64)));
    _Atomic uint32_t taken __attribute__((aligned(64)));
    _Atomic uint32_t wake_at __attribute__((aligned(64))); /* 0: no one waits */
    uint32_t high, low;
} tr__backlog;

void tr__backlog_init(tr__backlog *b, uint32_t high);

static inline void tr__backlog_pushed(tr__backlog *b)
{
    atomic_fetch_add_explicit(&b->pushed, 1, memory_order_relaxed);
}

/* Under the outside queue's try-lock, once per actor taken; true if the
 * caller must wake the waiters (tr__backlog_wake), once it has let the
 * lock go, so that the system call does not hold up the other takers. */
static inline bool tr__backlog_took(tr__backlog *b)
{
    /* seq_cst, then the load: pairs with the waiter's store of wake_at
     * and its load of taken (tr__backlog_wait). */
    uint32_t t = atomic_fetch_add(&b->taken, 1) + 1;
    tr__fence_after_rmw();
    uint32_t at = atomic_load_explicit(&b->wake_at, memory_order_relaxed);
    /* A waiter may lower it meanwhile: to an earlier target, reached too,
     * and then the others still sleep on ours. */
    while (at && (int32_t)(t - at) >= 0)
        if (atomic_compare_exchange_weak(&b->wake_at, &at, 0))
            return true;
    return false;
}

static inline void tr__backlog_wake(tr__backlog *b)
{
    tr__futex_wake(&b->wake_at, INT_MAX);
}

/* Whether a spawn from outside must wait: the backlog is over `high`.
 * Looks at the takers' count only once in 16 pushes (backlog.c). */
bool tr__backlog_over(tr__backlog *b);

/*
 * Wait (the backlog was over `high`) until it is down to `low`, the
 * deadline passes (TR_ETIMEDOUT; TR_NOW does not wait) or `stopping` is
 * raised (TR_ESHUTDOWN).  Only threads that are not workers call it.
 */
int tr__backlog_wait(tr__backlog *b, tr_deadline deadline, const atomic_bool *stopping);

/* Wake every waiter (the system is stopping). */
void tr__backlog_wake_all(tr__backlog *b);

#endif
