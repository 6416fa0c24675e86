/*
 * park.c - how an actor waits and how it is woken.
 *
 * Overview: an actor that must wait (receive on an empty mailbox, send
 * to a full one, yield, a deadline) *parks*: it publishes the wait, hands
 * its stack over and leaves the worker.  Whoever ends the wait first
 * *claims* it (a message sender by flipping `scheduled` 0 -> 1, a
 * receiver freeing room or a timer by moving `park_token` from even to
 * odd), so exactly one party wakes it.
 *
 * Implementation notes: the wait is published before the switch, so a
 * waker may act while the actor is still on its stack.  The `gate` makes
 * that safe: the waker and the actor's own post-switch code each add 1,
 * and only the second queues the actor, when its context is surely saved.
 * Every park starts a new even token, so a late timer for an old park
 * finds its token gone and does nothing.
 */
#include "runtime.h"

int tr__actor_park_begin(struct tr_actor *a, int kind, tr_deadline deadline,
                         uint32_t *token)
{
    tr__worker *w = tr__worker_now();
    if (!tr__worker_reserve_stack(w))
        return TR_ENOMEM;
    uint32_t t = (atomic_load_explicit(&a->park_token, memory_order_relaxed) | 1) + 1;
    a->park_timer = NULL;
    if (deadline != TR_FOREVER) {
        int rc = tr__timers_add_handle(w->sys, &w->timers, deadline, a, a->mbox.ref,
                                       t, &a->park_timer);
        if (rc)
            return rc;
        a->park_timer_home = w;
    }
    atomic_store_explicit(&a->gate, 0, memory_order_relaxed);
    atomic_store_explicit(&a->park_kind, kind, memory_order_relaxed);
    atomic_store_explicit(&a->parked, true, memory_order_relaxed);
    /* seq_cst: pairs with the acquire in tr__actor_timeout and with
     * tr__actor_interrupt, which reads the token after setting the
     * cancel flag that the parker reads after publishing its wait. */
    atomic_store(&a->park_token, t);
    *token = t;
    return 0;
}

/*
 * The park has ended before its deadline, or will not start: take its
 * timer back, which returns the timer's borrow of the actor now instead
 * of at the deadline.  Only the worker whose wheel holds it may; a park
 * that resumed elsewhere asks that worker to (timer.h).
 */
static void drop_timer(struct tr_actor *a, uint32_t token)
{
    if (!a->park_timer)
        return;
    tr__worker *w = tr__worker_now();
    tr__worker *home = a->park_timer_home;
    if (home == w)
        tr__timers_cancel(w->sys, &w->timers, a->park_timer, a->mbox.ref, token);
    else if (tr__timers_cancel_remote(&home->timers, a->park_timer, a->mbox.ref, token))
        tr__worker_cancel_queued(home);
    a->park_timer = NULL;
}

void tr__actor_park_switch(struct tr_actor *a)
{
    tr__worker *w = tr__worker_now();
    uint32_t token = atomic_load_explicit(&a->park_token, memory_order_relaxed);
    tr__stack *next = tr__worker_fresh_stack(w); /* the reserved spare */
    a->stack = w->stack;
    w->arriving = a;
    w->current = NULL;
    tr__worker_leave(w, next, false);
    /* Resumed, perhaps on another worker, which set current for us. */
    atomic_store_explicit(&a->park_token, token | 1, memory_order_relaxed);
    drop_timer(a, token);
}

void tr__actor_park_cancel(struct tr_actor *a, uint32_t token)
{
    atomic_store_explicit(&a->park_token, token | 1, memory_order_relaxed);
    atomic_store_explicit(&a->parked, false, memory_order_relaxed);
    drop_timer(a, token);
}

bool tr__actor_claim(struct tr_actor *a, uint32_t token)
{
    if (token & 1)
        return false; /* odd tokens name no wait */
    uint32_t expected = token;
    return atomic_compare_exchange_strong_explicit(
        &a->park_token, &expected, token | 1, memory_order_acq_rel,
        memory_order_relaxed);
}

void tr__actor_arrive(struct tr_actor *a)
{
    /* acq_rel: the second arrival sees everything the first one did. */
    if (atomic_fetch_add_explicit(&a->gate, 1, memory_order_acq_rel) != 1)
        return;
    /* A yield goes behind all work, local or not, as Go's Gosched does;
     * on the local queue it would run again before the global list.  A
     * sender that got room is woken by its receiver, which is busy: let
     * an idle worker take the sender so that both sides run at once. */
    int kind = atomic_load_explicit(&a->park_kind, memory_order_relaxed);
    if (kind == TR__PARK_YIELD)
        tr__schedule_global(a->mbox.sys, a);
    else if (kind == TR__PARK_WAIT)
        tr__schedule_and_wake(a->mbox.sys, a);
    else
        tr__schedule(a->mbox.sys, a);
}

void tr__actor_wake(struct tr_actor *a)
{
    if (atomic_load_explicit(&a->parked, memory_order_acquire))
        tr__actor_arrive(a);
    else
        tr__schedule(a->mbox.sys, a);
}

void tr__actor_timeout(struct tr_actor *a, uint32_t token)
{
    if ((token & 1) || atomic_load_explicit(&a->park_token, memory_order_acquire) != token)
        return;
    if (atomic_load_explicit(&a->park_kind, memory_order_relaxed) == TR__PARK_RECV) {
        /* A receive is claimed like a message arrival would claim it; a
         * stale claim at worst gives the actor an empty turn. */
        if (!atomic_exchange(&a->scheduled, 1))
            tr__actor_wake(a);
    } else if (tr__actor_claim(a, token)) {
        tr__actor_wake(a);
    }
}

void tr__actor_interrupt(struct tr_actor *a)
{
    /* A receive, or an idle handler actor, is woken as a message would
     * wake it; if the flag was already 1 its holder runs or wakes it. */
    if (!atomic_exchange(&a->scheduled, 1)) {
        tr__actor_wake(a);
        return;
    }
    /* Other waits are claimed by their token.  A park that begins after
     * our load sees the cancel flag once it has published itself. */
    for (;;) {
        uint32_t t = atomic_load(&a->park_token);
        if ((t & 1) || atomic_load_explicit(&a->park_kind, memory_order_relaxed) == TR__PARK_RECV)
            return;
        if (tr__actor_claim(a, t)) {
            tr__actor_wake(a);
            return;
        }
    }
}

static int yield(struct tr_actor *a)
{
    /* A cancelled actor yields too before it hears of it: one that goes
     * on regardless (a child slow to stop) then still lets its worker
     * run the others and fire its timers, its supervisor's deadline
     * among them. */
    uint32_t token;
    int rc = tr__actor_park_begin(a, TR__PARK_YIELD, TR_FOREVER, &token);
    if (rc)
        return rc;
    /* We are our own waker: claim, arrive once now and once after the
     * switch, which queues us behind whatever is runnable.  If a cancel
     * claimed the park first, its wake is the other arrival: arriving
     * here too would queue us before our context is saved. */
    if (tr__actor_claim(a, token))
        tr__actor_arrive(a);
    tr__actor_park_switch(a);
    return tr__actor_cancelled(a) ? TR_ECANCELED : 0;
}

int tr_yield(void)
{
    tr__worker *w = tr__worker_now();
    struct tr_actor *a = w ? w->current : NULL;
    return a ? tr__cancel_result(yield(a)) : TR_ECONTEXT;
}

int tr__timed_out(struct tr_actor *a, tr_deadline deadline)
{
    if (!a || deadline == TR_NOW)
        return TR_ETIMEDOUT;
    int rc = yield(a);
    return rc == TR_ECANCELED ? rc : TR_ETIMEDOUT;
}
