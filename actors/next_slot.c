/* next_slot.c - a thief's side of the next slot; see next_slot.h. */
#include "next_slot.h"

#include <sched.h>

#include "remote_fence.h"

struct tr_actor *tr__next_steal(tr__next_slot *s)
{
    if (tr__next_empty(s) || atomic_exchange(&s->claim, 1))
        return NULL;
    if (!tr__remote_fence()) { /* unordered: leave the slot to its owner */
        atomic_store_explicit(&s->claim, 0, memory_order_release);
        return NULL;
    }
    while (atomic_load_explicit(&s->busy, memory_order_acquire))
        sched_yield(); /* a few instructions, unless the owner was preempted */
    struct tr_actor *a = atomic_exchange(&s->actor, NULL);
    atomic_store_explicit(&s->claim, 0, memory_order_release);
    return a;
}
