/* backlog.c - spawners outside the system wait for the workers; see backlog.h. */
#include "backlog.h"

#include "deadline.h"
#include "troupe/error.h"

#define CHECK_EVERY 16

void tr__backlog_init(tr__backlog *b, uint32_t high)
{
    atomic_init(&b->pushed, 0);
    atomic_init(&b->taken, 0);
    atomic_init(&b->wake_at, 0);
    b->high = high;
    b->low = high / 4;
}

/* Whether `taken` has reached `target` (counts wrap). */
static bool reached(uint32_t taken, uint32_t target)
{
    return (int32_t)(taken - target) >= 0;
}

bool tr__backlog_over(tr__backlog *b)
{
    uint32_t pushed = atomic_load_explicit(&b->pushed, memory_order_relaxed);
    /* One look at the takers' line in CHECK_EVERY pushes keeps it theirs.
     * As int32: a take counted after our read of `pushed` is no backlog. */
    return b->high && pushed % CHECK_EVERY == 0 &&
           (int32_t)(pushed - atomic_load_explicit(&b->taken, memory_order_relaxed)) >
               (int32_t)b->high;
}

int tr__backlog_wait(tr__backlog *b, tr_deadline deadline, const atomic_bool *stopping)
{
    uint32_t target = atomic_load_explicit(&b->pushed, memory_order_relaxed) - b->low;
    if (!target)
        target = 1; /* 0 means no one waits */
    for (;;) {
        /* The deadline first: a wake-up that came only at the deadline
         * is a wait that lasted until it, and TR_NOW posts nothing. */
        if (tr__deadline_passed(deadline))
            return TR_ETIMEDOUT;
        /* The earliest target is posted: its take wakes every sleeper,
         * and those still short post theirs again. */
        uint32_t posted = atomic_load(&b->wake_at);
        if (!posted || (int32_t)(target - posted) < 0) {
            if (!atomic_compare_exchange_strong(&b->wake_at, &posted, target))
                continue;
            posted = target;
        }
        /* The stop first: a spawn woken by it must not go on to make an
         * actor that shutdown would destroy at once. */
        if (atomic_load(stopping)) {
            /* Another waiter may have posted again after the stop's wake-up
             * and gone to sleep on it: wake it too. */
            tr__backlog_wake_all(b);
            return TR_ESHUTDOWN;
        }
        if (reached(atomic_load(&b->taken), target))
            return 0;
        tr__futex_wait(&b->wake_at, posted, deadline);
    }
}

void tr__backlog_wake_all(tr__backlog *b)
{
    atomic_store(&b->wake_at, 0);
    tr__backlog_wake(b);
}
