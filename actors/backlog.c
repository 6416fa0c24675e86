/* backlog.c - spawners outside the system wait for the workers; see backlog.h. */
#include "backlog.h"

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

int tr__backlog_wait(tr__backlog *b, tr_deadline deadline, const atomic_bool *stopping)
{
    uint32_t pushed = atomic_load_explicit(&b->pushed, memory_order_relaxed);
    /* One look at the takers' line in CHECK_EVERY pushes keeps it theirs. */
    if (!b->high || pushed % CHECK_EVERY ||
        pushed - atomic_load_explicit(&b->taken, memory_order_relaxed) <= b->high)
        return 0;
    uint32_t target = pushed - b->low;
    if (!target)
        target = 1; /* 0 means no one waits */
    for (;;) {
        /* The earliest target is posted: its take wakes every sleeper,
         * and those still short post theirs again. */
        uint32_t posted = atomic_load(&b->wake_at);
        if (!posted || (int32_t)(target - posted) < 0) {
            if (!atomic_compare_exchange_strong(&b->wake_at, &posted, target))
                continue;
            posted = target;
        }
        if (reached(atomic_load(&b->taken), target))
            return 0;
        if (deadline != TR_FOREVER && tr_now() >= deadline)
            return TR_ETIMEDOUT;
        if (atomic_load_explicit(stopping, memory_order_relaxed))
            return TR_ESHUTDOWN;
        tr__futex_wait(&b->wake_at, posted, deadline);
    }
}

void tr__backlog_wake_all(tr__backlog *b)
{
    atomic_store(&b->wake_at, 0);
    tr__futex_wake(&b->wake_at, INT_MAX);
}
