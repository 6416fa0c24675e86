/* inject.c - the shared run queue; see inject.h. */
#include "inject.h"

#include <stddef.h>

void tr__inject_init(tr__inject *q)
{
    atomic_init(&q->stub.next, NULL);
    atomic_init(&q->head, &q->stub);
    atomic_init(&q->tail, &q->stub);
    atomic_init(&q->taking, false);
}

void tr__inject_push(tr__inject *q, tr__inject_node *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    tr__inject_node *prev = atomic_exchange(&q->head, n);
    /* Release: the consumer that follows the link sees the node's owner
     * as it was when it was pushed. */
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

/*
 * Empty means both ends name the stub.  The producers' end alone is not
 * enough: when a producer pushes while the consumer puts the stub back,
 * the stub can end up last with nodes still before it (the consumer gives
 * up on them until the producer's link lands), and a worker that parked
 * on that view would wait for ever (the stress test found it).  Acquire:
 * pairs with the exchange that put the stub last, so the consumer's end
 * as it was then is seen.
 */
bool tr__inject_nonempty(tr__inject *q)
{
    return atomic_load_explicit(&q->head, memory_order_acquire) != &q->stub ||
           atomic_load_explicit(&q->tail, memory_order_relaxed) != &q->stub;
}

bool tr__inject_ready(tr__inject *q)
{
    tr__inject_node *tail = atomic_load_explicit(&q->tail, memory_order_acquire);
    return tail != &q->stub || atomic_load_explicit(&q->stub.next, memory_order_acquire);
}

tr__inject_node *tr__inject_newest(tr__inject *q)
{
    return atomic_load_explicit(&q->head, memory_order_acquire);
}

bool tr__inject_begin(tr__inject *q)
{
    /* Acquire, paired with the release in tr__inject_end: one taker at a
     * time sees the previous taker's update of `tail`. */
    return !atomic_load_explicit(&q->taking, memory_order_relaxed) &&
           !atomic_exchange_explicit(&q->taking, true, memory_order_acquire);
}

void tr__inject_end(tr__inject *q)
{
    atomic_store_explicit(&q->taking, false, memory_order_release);
}

static void set_tail(tr__inject *q, tr__inject_node *n)
{
    atomic_store_explicit(&q->tail, n, memory_order_relaxed);
}

tr__inject_node *tr__inject_take(tr__inject *q)
{
    tr__inject_node *tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    tr__inject_node *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &q->stub) {
        if (!next)
            return NULL;
        set_tail(q, tail = next);
        next = atomic_load_explicit(&tail->next, memory_order_acquire);
    }
    if (next) {
        set_tail(q, next);
        return tail;
    }
    /* `tail` is the last node we can see.  If a producer has already
     * exchanged a newer one in, wait for its link: it is a gap, not an
     * empty queue. */
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
        return NULL;
    tr__inject_push(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        set_tail(q, next);
        return tail;
    }
    return NULL;
}
