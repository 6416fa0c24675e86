/* inject.c - the shared run queue; see inject.h. */
#include "inject.h"

#include <stddef.h>

void tr__inject_init(tr__inject *q)
{
    atomic_init(&q->stub.next, NULL);
    atomic_init(&q->head, &q->stub);
    q->tail = &q->stub;
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

bool tr__inject_nonempty(tr__inject *q)
{
    /* After the consumer takes the last node it pushes the stub back, so
     * the producers' end names the stub exactly when nothing is left. */
    return atomic_load_explicit(&q->head, memory_order_relaxed) != &q->stub;
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

tr__inject_node *tr__inject_take(tr__inject *q)
{
    tr__inject_node *tail = q->tail;
    tr__inject_node *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &q->stub) {
        if (!next)
            return NULL;
        q->tail = tail = next;
        next = atomic_load_explicit(&tail->next, memory_order_acquire);
    }
    if (next) {
        q->tail = next;
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
        q->tail = next;
        return tail;
    }
    return NULL;
}
