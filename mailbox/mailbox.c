/*
 * mailbox.c - the bounded MPSC mailbox: ring, owner notification and the
 * wait list of senders that found it full.  See mailbox.h for the
 * protocol and docs/mailbox.md for why no wake-up is lost.
 */
#include "mailbox.h"

#include <stdlib.h>
#include <string.h>

#include "../actors/fence.h"
#include "../actors/futex.h"
#include "../actors/runtime.h"
#include "../actors/sanitizer.h"

/* Largest capacity accepted (the ring index is 32-bit). */
#define MAX_CAPACITY (1u << 30)

uint32_t tr__mailbox_ring_size(const struct tr_system *sys, uint32_t capacity)
{
    if (capacity == 0)
        capacity = sys->cfg.mailbox_capacity;
    if (capacity == 0 || capacity >= MAX_CAPACITY)
        return 0;
    /* The smallest power of two above capacity: one slot stays free. */
    return 2u << (31 - __builtin_clz(capacity));
}

void tr__mailbox_init(struct tr_mailbox *mb, struct tr_system *sys,
                      uint32_t ring_size, struct tr_actor *owner,
                      _Atomic uint32_t *flag, int closed_error)
{
    memset(mb, 0, sizeof *mb);
    mb->ring_size = ring_size;
    mb->sys = sys;
    mb->owner = owner;
    mb->flag = flag;
    mb->closed_error = closed_error;
}

size_t tr__mailbox_ring_bytes(uint32_t ring_size)
{
    size_t bytes = sizeof(tr__ringbuf) + (size_t)ring_size * sizeof(tr_msg);
    return (bytes + TR__CACHELINE - 1) & ~(size_t)(TR__CACHELINE - 1);
}

/* Rings of the default capacity, nearly all of them, come from the
 * system's pool; others from malloc. */
static bool pooled(const struct tr_mailbox *mb)
{
    return tr__mailbox_ring_bytes(mb->ring_size) == mb->sys->pools[TR__POOL_RING].size;
}

static void ring_free(struct tr_mailbox *mb, tr__ringbuf *rb)
{
    if (pooled(mb))
        tr__free(mb->sys, TR__POOL_RING, rb);
    else
        free(rb);
}

/* The first sender allocates the ring; a loser of the race frees its own. */
static tr__ringbuf *ring_create(struct tr_mailbox *mb)
{
    tr__ringbuf *rb = pooled(mb) ? tr__alloc(mb->sys, TR__POOL_RING)
                                 : aligned_alloc(TR__CACHELINE,
                                                 tr__mailbox_ring_bytes(mb->ring_size));
    if (!rb)
        return NULL;
    ck_ring_init(&rb->ring, mb->ring_size);
    tr__ringbuf *expected = NULL;
    /* Pairs with the acquire loads in put and take. */
    if (!atomic_compare_exchange_strong_explicit(&mb->rb, &expected, rb,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire)) {
        ring_free(mb, rb);
        return expected;
    }
    return rb;
}

int tr__mailbox_put(struct tr_mailbox *mb, const tr_msg *msg)
{
    tr__ringbuf *rb = atomic_load_explicit(&mb->rb, memory_order_acquire);
    if (__builtin_expect(rb == NULL, 0) && !(rb = ring_create(mb)))
        return TR_ENOMEM;
    TR_TSAN_RELEASE(rb);
    if (!ck_ring_enqueue_mpsc_tr_msg(&rb->ring, rb->slots, (struct tr_msg *)msg))
        return TR_EFULL;
    return 0;
}

/*
 * The owner's flag (`scheduled` or `signalled`) says "the owner will look
 * at its ring again".  If it reads 0, the sender's exchange decides who
 * schedules, and it is a seq_cst read-modify-write in the owner's chain
 * of exchanges, so the owner's next look sees the message.  If it reads
 * 1, the sender and the owner form a store-buffer pattern (the sender
 * wrote the ring and reads the flag; the owner writes the flag and reads
 * the ring), so both sides fence and the sender reads again: either it
 * sees the owner's 0 or the owner's look sees the message
 * (docs/mailbox.md).  A sender that finds the flag at 1 is done with
 * loads: the busy owner's line is only read, not taken away from it,
 * which is what an exchange per message did (a third of a many-to-one
 * workload's time).
 */
static bool owner_needs_flag(_Atomic uint32_t *flag)
{
    if (atomic_load_explicit(flag, memory_order_relaxed)) {
        tr__fence(); /* pairs with owner_idle */
        if (atomic_load_explicit(flag, memory_order_relaxed))
            return false;
    }
    return !atomic_exchange(flag, 1);
}

/* The flag is up now; whoever raised it wakes the owner. */
static void owner_wake(_Atomic uint32_t *flag, struct tr_actor *actor)
{
    if (actor)
        tr__actor_wake(actor);
    else
        tr__futex_wake(flag, 1);
}

void tr__mailbox_notify(struct tr_mailbox *mb)
{
    if (owner_needs_flag(mb->flag))
        owner_wake(mb->flag, mb->owner);
}


/* Take `w` off the wait list; the caller holds wait_lock. */
static void unlink_waiter(struct tr_mailbox *mb, tr__waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        mb->wait_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        mb->wait_tail = w->prev;
    w->listed = false;
    atomic_fetch_sub_explicit(&mb->nwaiters, 1, memory_order_relaxed);
}

static void wake_one_sender(struct tr_mailbox *mb)
{
    struct tr_actor *actor = NULL;
    _Atomic uint32_t *word = NULL, *flag = NULL;

    tr__spin_lock(&mb->wait_lock);
    tr__waiter *w;
    while ((w = mb->wait_head) != NULL) {
        unlink_waiter(mb, w);
        if (w->flag) {
            /* A select: it looks at every case again once woken.  The
             * flag may be a word on a thread's stack, which is gone once
             * it has left the list: raise it under the lock.  `woken` is
             * read without the lock (woken_on_a_list in select.c). */
            __atomic_store_n(&w->woken, true, __ATOMIC_RELEASE);
            if (!atomic_exchange(w->flag, 1)) {
                flag = w->flag;
                actor = w->actor;
            }
            break;
        }
        if (!w->actor) {
            w->woken = true;
            if (w->waiting)
                tr__deadlock_leave(w->waiting); /* no false cycle */
            word = &w->word;
            atomic_store_explicit(word, 1, memory_order_release);
            break;
        }
        /* An actor whose timer claimed it first is left to time out. */
        if (tr__actor_claim(w->actor, w->token)) {
            w->woken = true;
            actor = w->actor;
            tr__deadlock_leave(w->waiting); /* it waits no more: no false cycle */
            break;
        }
    }
    tr__spin_unlock(&mb->wait_lock);

    if (flag)
        owner_wake(flag, actor); /* a futex wake is harmless if it left */
    else if (actor)
        tr__actor_wake(actor);
    else if (word)
        tr__futex_wake(word, 1); /* harmless if the thread already left */
}

/*
 * A parked sender is woken only once half the ring is free, so that it
 * refills many slots per park instead of a batch's worth or one: a park
 * and a wake cost far more than a message.
 */
static bool room_for_a_burst(tr__ringbuf *rb, const struct tr_mailbox *mb)
{
    return ck_ring_size(&rb->ring) <= mb->ring_size / 2;
}

bool tr__mailbox_take(struct tr_mailbox *mb, tr_msg *out)
{
    tr__ringbuf *rb = atomic_load_explicit(&mb->rb, memory_order_acquire);
    if (!rb || !ck_ring_dequeue_mpsc_tr_msg(&rb->ring, rb->slots, out))
        return false;
    TR_TSAN_ACQUIRE(rb);
    /* A cheap plain look; tr__mailbox_owner_idle is the guarantee. */
    if (atomic_load_explicit(&mb->nwaiters, memory_order_relaxed) && room_for_a_burst(rb, mb))
        wake_one_sender(mb);
    return true;
}

uint32_t tr__mailbox_queued(struct tr_mailbox *mb)
{
    tr__ringbuf *rb = atomic_load_explicit(&mb->rb, memory_order_acquire);
    return rb ? ck_ring_size(&rb->ring) : 0;
}

/* Tries before tr__mailbox_count gives up on an instant and clamps. */
#define COUNT_TRIES 16

uint32_t tr__mailbox_count(struct tr_mailbox *mb)
{
    tr__ringbuf *rb = atomic_load_explicit(&mb->rb, memory_order_acquire);
    if (!rb)
        return 0;
    const struct ck_ring *r = &rb->ring;
    uint32_t c, p;
    for (int i = 0; i < COUNT_TRIES; i++) {
        c = ck_pr_load_uint(&r->c_head);
        ck_pr_fence_load();
        p = ck_pr_load_uint(&r->p_tail);
        ck_pr_fence_load();
        if (ck_pr_load_uint(&r->c_head) == c)
            return p - c; /* both ends as they were when p was read */
    }
    /* The owner kept taking: p - c counts what was put after c moved
     * too, so it is never below the truth; it is only too high. */
    return p - c < r->size ? p - c : r->size - 1;
}

bool tr__mailbox_empty(struct tr_mailbox *mb)
{
    return tr__mailbox_queued(mb) == 0;
}

bool tr__mailbox_has_room(struct tr_mailbox *mb)
{
    return tr__mailbox_queued(mb) < mb->ring_size - 1;
}

bool tr__mailbox_drained(struct tr_mailbox *mb)
{
    /* Acquire: pairs with the close; a message sent before it is seen. */
    return atomic_load_explicit(&mb->closed, memory_order_acquire) && tr__mailbox_empty(mb);
}

/*
 * The owner has freed room and must not forget a sender that found the
 * ring full: it reads nwaiters after a seq_cst fence, and add_waiter
 * increments it before a fence and a last look at the ring.  The fences
 * are ordered, so either the owner sees the waiter or the waiter sees
 * the room (docs/mailbox.md).  tr__mailbox_take only peeks at nwaiters;
 * this is the check that counts.  A ring full again by now has no room
 * to miss: its next take and check wake the waiter.  (Waking it anyway
 * made a select with a send case into a full mailbox of its own caller
 * wake itself at each idle, and spin.)
 */
void tr__mailbox_check_waiters(struct tr_mailbox *mb)
{
    if (atomic_load_explicit(&mb->nwaiters, memory_order_relaxed) && tr__mailbox_has_room(mb))
        wake_one_sender(mb);
}

void tr__mailbox_sync_waiters(struct tr_mailbox *mb)
{
    /* The owner goes on (its turn ended on the batch limit), so a waiter
     * can wait for half the ring: the takes that follow look for it, and
     * owner_idle at the latest finds it. */
    tr__ringbuf *rb = atomic_load_explicit(&mb->rb, memory_order_acquire);
    tr__fence();
    if (rb && room_for_a_burst(rb, mb))
        tr__mailbox_check_waiters(mb);
}

void tr__mailbox_owner_idle(struct tr_mailbox *mb)
{
    /* seq_cst, as the sender's exchange: the chain of exchanges is also
     * what hands the actor (and this worker's hazard) to its next runner. */
    atomic_exchange(mb->flag, 0);
    tr__fence_after_rmw(); /* pairs with owner_needs_flag and add_waiter */
    tr__mailbox_check_waiters(mb);
}

bool tr__mailbox_add_waiter(struct tr_mailbox *mb, tr__waiter *w)
{
    tr__spin_lock(&mb->wait_lock);
    if (atomic_load_explicit(&mb->closed, memory_order_relaxed)) {
        tr__spin_unlock(&mb->wait_lock);
        return false;
    }
    w->next = NULL;
    w->prev = mb->wait_tail;
    if (mb->wait_tail)
        mb->wait_tail->next = w;
    else
        mb->wait_head = w;
    mb->wait_tail = w;
    w->listed = true;
    atomic_fetch_add(&mb->nwaiters, 1);
    tr__spin_unlock(&mb->wait_lock);
    tr__fence_after_rmw(); /* pairs with tr__mailbox_check_waiters' callers */
    return true;
}

/* Take a waiter off the list if a receiver has not already done so. */
static void remove_waiter(struct tr_mailbox *mb, tr__waiter *w)
{
    tr__spin_lock(&mb->wait_lock);
    if (w->listed)
        unlink_waiter(mb, w);
    tr__spin_unlock(&mb->wait_lock);
}

void tr__mailbox_remove_waiter(struct tr_mailbox *mb, tr__waiter *w, bool used)
{
    remove_waiter(mb, w);
    /* The receiver woke us instead of a plain sender; we did not send. */
    if (w->woken && !used)
        tr__mailbox_check_waiters(mb);
}

static int wait_room_actor(struct tr_mailbox *mb, struct tr_actor *self,
                           tr_deadline deadline)
{
    tr__waiter w = {.actor = self, .waiting = &self->waiting_on};
    tr__owner_release_senders(self);
    int rc = tr__actor_park_begin(self, TR__PARK_WAIT, deadline, &w.token);
    if (rc)
        return rc;
    if (!tr__mailbox_add_waiter(mb, &w)) {
        tr__actor_park_cancel(self, w.token);
        return mb->closed_error;
    }
    /* Published: now look for a cycle, room or a cancel.  Each of them
     * is seen here or by whoever makes it happen after our wait. */
    rc = tr__deadlock_enter(w.waiting, mb) ? TR_EDEADLK : 0;
    bool ours = (rc || tr__mailbox_has_room(mb) || tr__actor_cancelled(self)) &&
                tr__actor_claim(self, w.token);
    if (ours)
        tr__actor_park_cancel(self, w.token);
    else
        tr__actor_park_switch(self);
    tr__deadlock_leave(w.waiting);
    if (atomic_load_explicit(&mb->closed, memory_order_acquire))
        rc = mb->closed_error;
    else if (tr__actor_cancelled(self))
        rc = TR_ECANCELED;
    else if (!ours)
        rc = w.woken ? 0 : TR_ETIMEDOUT;
    /* 0: room, try again.  Otherwise a receiver's wake-up, if it picked
     * us, goes to the next sender: it may have been the last. */
    tr__mailbox_remove_waiter(mb, &w, rc == 0);
    return rc;
}

static int wait_room_thread(struct tr_mailbox *mb, tr_deadline deadline)
{
    /* A thread's wait with a deadline ends on its own, and so does any
     * cycle through it: only one for ever is on the chain.  (The threads
     * of an application often wait briefly while actors wait for ever;
     * those actors would get TR_EDEADLK from cycles about to break.) */
    tr__waiter w = {.actor = NULL,
                    .waiting = deadline == TR_FOREVER ? tr__thread_waiting() : NULL};
    int rc = 0;

    tr__owner_release_senders(NULL);
    if (!tr__mailbox_add_waiter(mb, &w))
        return mb->closed_error;
    /* As an actor does; a thread that owns no mailbox closes no cycle. */
    if (w.waiting && tr__deadlock_enter(w.waiting, mb))
        rc = TR_EDEADLK;
    while (!rc && !tr__mailbox_has_room(mb) &&
           !atomic_load_explicit(&w.word, memory_order_acquire)) {
        if (tr__futex_wait(&w.word, 0, deadline) == TR_ETIMEDOUT) {
            rc = TR_ETIMEDOUT;
            break;
        }
    }
    if (w.waiting)
        tr__deadlock_leave(w.waiting);
    remove_waiter(mb, &w);
    /* A receiver may have picked us just as we timed out, or as we saw
     * the cycle it was breaking: use its room. */
    if (w.woken)
        rc = 0;
    if (atomic_load_explicit(&mb->closed, memory_order_acquire))
        rc = mb->closed_error;
    return rc;
}

int tr__mailbox_wait_room(struct tr_mailbox *mb, tr_deadline deadline)
{
    tr__worker *wk = tr__worker_now();
    struct tr_actor *self = wk ? wk->current : NULL;
    return self ? wait_room_actor(mb, self, deadline)
                : wait_room_thread(mb, deadline);
}

void tr__mailbox_close(struct tr_mailbox *mb)
{
    tr__spin_lock(&mb->wait_lock);
    atomic_store_explicit(&mb->closed, true, memory_order_release);
    tr__spin_unlock(&mb->wait_lock);
    while (atomic_load_explicit(&mb->nwaiters, memory_order_acquire))
        wake_one_sender(mb);
}

void tr__mailbox_forget_actor_waiters(struct tr_mailbox *mb)
{
    tr__spin_lock(&mb->wait_lock);
    for (tr__waiter *w = mb->wait_head; w; w = w->next)
        if (w->actor)
            unlink_waiter(mb, w); /* keeps w->next */
    tr__spin_unlock(&mb->wait_lock);
}

void tr__mailbox_destroy(struct tr_mailbox *mb)
{
    tr__ringbuf *rb = atomic_load_explicit(&mb->rb, memory_order_acquire);
    if (!rb)
        return;
    tr_msg m;
    while (ck_ring_dequeue_mpsc_tr_msg(&rb->ring, rb->slots, &m)) {
        TR_TSAN_ACQUIRE(rb);
        tr_msg_release(&m);
    }
    ring_free(mb, rb);
    atomic_store_explicit(&mb->rb, NULL, memory_order_relaxed);
}
