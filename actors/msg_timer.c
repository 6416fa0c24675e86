/*
 * msg_timer.c - message timers: arming, cancelling and delivering them.
 * msg_timer.h has the design, troupe/timer.h the contract.
 */
#include "msg_timer.h"

#include <sched.h>
#include <stddef.h>
#include <stdlib.h>

#include "runtime.h"

#define CHUNK0 64u /* entries in chunk 0; chunk k holds CHUNK0 << k */

/* A one-shot that finds its mailbox full tries again RETRY_NS later, then
 * at doubling intervals of at most RETRY_MAX_NS: soon after the receiver
 * makes room, without waking its worker more than a hundred times a
 * second for a receiver that is stuck. */
#define RETRY_NS 100000
#define RETRY_MAX_NS 10000000

struct tr__msg_timer {
    tr__wheel_node node;  /* armed while pending; free-list link otherwise */
    tr_msg msg;           /* msg.from: whoever armed it */
    tr_ref to;
    int64_t period;       /* 0: a one-shot */
    uint64_t missed;      /* see tr_timer_missed */
    uint32_t gen;         /* the handle's; bumped when the entry is recycled */
    uint32_t index;       /* in its set, for the handle */
    bool firing;          /* its home worker delivers it, outside the lock */
};

static struct tr__msg_timer *timer_of(tr__wheel_node *n)
{
    return (struct tr__msg_timer *)((char *)n - offsetof(struct tr__msg_timer, node));
}

/* Handles are gen << 32 | index << bits | home worker, with just enough
 * bits for the workers, so each worker can hold 2^(32 - bits) - 1. */
static unsigned worker_bits(const tr_system *sys)
{
    return sys->nworkers > 1 ? 32 - (unsigned)__builtin_clz(sys->nworkers - 1) : 0;
}

/* Chunk k starts at entry CHUNK0 * (2^k - 1). */
static unsigned chunk_of(uint32_t index)
{
    return 31 - (unsigned)__builtin_clz(index / CHUNK0 + 1);
}

static struct tr__msg_timer *entry_at(tr__msg_timers *t, uint32_t index)
{
    unsigned k = chunk_of(index);
    return &t->chunks[k][index - ((1u << k) - 1) * CHUNK0];
}

/*
 * An entry to arm, under the lock, or NULL.  A new chunk is allocated
 * under the lock: that happens 27 times at most in a set's life, and
 * malloc never calls back into troupe.  Pages of a big chunk are touched
 * only as its entries are first used.
 */
static struct tr__msg_timer *take(tr__msg_timers *t, unsigned bits)
{
    struct tr__msg_timer *e = t->free;
    if (e) {
        t->free = e->node.next ? timer_of(e->node.next) : NULL;
        return e;
    }
    if (t->used >= (1ull << (32 - bits)) - 1)
        return NULL;
    unsigned k = chunk_of(t->used);
    if (!t->chunks[k] && !(t->chunks[k] = malloc(((size_t)CHUNK0 << k) * sizeof *e)))
        return NULL;
    e = entry_at(t, t->used);
    *e = (struct tr__msg_timer){.gen = t->first_gen, .index = t->used};
    t->used++;
    return e;
}

/* Under the lock: the timer has ended; its handle goes stale. */
static void recycle(tr__msg_timers *t, struct tr__msg_timer *e)
{
    if (++e->gen == 0)
        e->gen = 1; /* a handle is never TR_TIMER_NONE */
    e->node.next = t->free ? &t->free->node : NULL;
    t->free = e;
}

/* The pending timer `h` names, with its set locked; NULL if none. */
static struct tr__msg_timer *lock_timer(tr_system *sys, tr_timer_ref h,
                                        tr__msg_timers **set)
{
    unsigned bits = worker_bits(sys);
    uint32_t home = (uint32_t)h & ((1u << bits) - 1), index = (uint32_t)h >> bits;
    if (home >= sys->nworkers)
        return NULL;
    tr__msg_timers *t = &sys->workers[home].msg_timers;
    tr__spin_lock(&t->lock);
    struct tr__msg_timer *e = index < t->used ? entry_at(t, index) : NULL;
    if (e && e->gen == h >> 32 && (e->firing || tr__wheel_armed(&e->node))) {
        *set = t;
        return e;
    }
    tr__spin_unlock(&t->lock);
    return NULL;
}

/* A timer's hold on its target while delivering to it. */
typedef struct target {
    struct tr_mailbox *mb;  /* NULL: gone */
    void *obj;
    uint8_t kind;
} target;

/* Borrow the target's mailbox: 0, or why nothing can go to it. */
static int target_get(tr_system *sys, tr_ref to, target *tg)
{
    tg->mb = tr__mailbox_borrow(sys, to, &tg->obj, &tg->kind);
    if (!tg->mb)
        return TR_ENOACTOR;
    return atomic_load_explicit(&tg->mb->closed, memory_order_relaxed) ? tg->mb->closed_error : 0;
}

/* Drop the borrow; it may destroy the target, and run payload destructors. */
static void target_put(tr_system *sys, tr_ref to, target *tg)
{
    if (tg->mb)
        tr__ref_put(sys, to, tg->obj, tg->kind);
}

static int arm(tr_system *sys, tr_ref to, const tr_msg *msg, int64_t period,
               tr_deadline first, tr_timer_ref *out)
{
    /* A stale target is refused now rather than found out later.  Held
     * as a send holds it: a plain borrow from a thread is not waited for
     * by a shutdown destroying actors, which freed the actor under it. */
    tr__hold hold;
    struct tr_mailbox *mb = tr__hold_mailbox(sys, to, &hold);
    if (!mb)
        return atomic_load(&sys->stopping) ? TR_ESHUTDOWN : TR_ENOACTOR;
    int rc = atomic_load_explicit(&mb->closed, memory_order_relaxed) ? mb->closed_error : 0;
    tr__hold_release(sys, &hold);
    if (rc)
        return rc;
    tr_msg m = *msg;
    m.from = tr__sender_ref(sys, tr__worker_now());
    unsigned bits = worker_bits(sys), home = (uint32_t)to % sys->nworkers;
    tr__worker *w = &sys->workers[home];
    tr__msg_timers *t = &w->msg_timers;

    tr__spin_lock(&t->lock);
    /* Under the lock: tr__msg_timers_stop takes it after `stopping` is
     * set, so a timer is either refused here or released there. */
    struct tr__msg_timer *e = NULL;
    if (atomic_load_explicit(&sys->stopping, memory_order_relaxed))
        rc = TR_ESHUTDOWN;
    else if (!(e = take(t, bits)))
        rc = TR_ENOMEM;
    if (rc) {
        tr__spin_unlock(&t->lock);
        return rc;
    }
    e->msg = m;
    e->to = to;
    e->period = period;
    e->missed = 0;
    tr__wheel_arm(&t->wheel, &e->node, first);
    if (first < atomic_load_explicit(&t->next_due, memory_order_relaxed))
        atomic_store_explicit(&t->next_due, first, memory_order_relaxed);
    /* The home worker sleeps past this deadline: wake it, once (the
     * reset keeps a run of arms from making a system call each). */
    int64_t sleeping = atomic_load_explicit(&t->sleep_until, memory_order_relaxed);
    bool kick = sleeping && first < sleeping;
    if (kick)
        atomic_store_explicit(&t->sleep_until, 0, memory_order_relaxed);
    tr_timer_ref h = (uint64_t)e->gen << 32 | ((uint64_t)e->index << bits | home);
    tr__spin_unlock(&t->lock);

    if (kick)
        tr__worker_kick(w);
    if (out)
        *out = h;
    return 0;
}

int tr_send_after(tr_system *sys, tr_ref to, const tr_msg *msg, tr_deadline when,
                  tr_timer_ref *out)
{
    if (!sys || !msg)
        return TR_EINVAL;
    return arm(sys, to, msg, 0, when, out);
}

int tr_send_every(tr_system *sys, tr_ref to, const tr_msg *msg, int64_t period_ns,
                  tr_deadline first, tr_timer_ref *out)
{
    if (!sys || !msg || period_ns <= 0 || msg->free_fn)
        return TR_EINVAL;
    /* Ticks are counted from the first one that can be on time, so a
     * start in the past neither bursts nor counts as missed ticks. */
    int64_t now = tr_now();
    return arm(sys, to, msg, period_ns, first < now ? now : first, out);
}

int tr_timer_cancel(tr_system *sys, tr_timer_ref timer)
{
    if (!sys)
        return TR_EINVAL;
    tr__msg_timers *t;
    struct tr__msg_timer *e;
    while ((e = lock_timer(sys, timer, &t)) && e->firing) {
        /* Its worker is delivering it now, which takes microseconds and
         * runs no code of the application's: wait for the outcome, so
         * that nothing is delivered after we return. */
        tr__spin_unlock(&t->lock);
        sched_yield();
    }
    if (!e)
        return TR_ENOTIMER;
    tr__wheel_cancel(&t->wheel, &e->node);
    tr_msg m = e->msg;
    recycle(t, e);
    tr__spin_unlock(&t->lock);
    tr_msg_release(&m);
    return 0;
}

int tr_timer_missed(tr_system *sys, tr_timer_ref timer, uint64_t *missed)
{
    if (!sys || !missed)
        return TR_EINVAL;
    tr__msg_timers *t;
    struct tr__msg_timer *e = lock_timer(sys, timer, &t);
    if (!e)
        return TR_ENOTIMER;
    *missed = e->missed;
    tr__spin_unlock(&t->lock);
    return 0;
}

/* A periodic timer's tick after `now`, skipping (and counting) the ones
 * its worker was too late for. */
static int64_t next_tick(struct tr__msg_timer *e, int64_t now)
{
    int64_t late = (now - e->node.deadline) / e->period, step, next;
    e->missed += (uint64_t)late;
    if (__builtin_mul_overflow(late + 1, e->period, &step) ||
        __builtin_add_overflow(e->node.deadline, step, &next))
        return TR_FOREVER;
    return next;
}

/*
 * Under the lock: a due timer's delivery came to `rc`; re-arm it or end
 * it.  Returns true if its payload is now the caller's to release.
 */
static bool settle(tr__msg_timers *t, struct tr__msg_timer *e, int rc, int64_t now)
{
    e->firing = false;
    bool gone = rc && rc != TR_EFULL && rc != TR_ENOMEM;
    if (gone || (!rc && !e->period)) {
        recycle(t, e);
        return gone;
    }
    int64_t next;
    if (e->period) {
        e->missed += rc != 0;
        next = next_tick(e, now);
    } else {
        unsigned shift = e->missed < 7 ? (unsigned)e->missed : 7;
        int64_t delay = (int64_t)RETRY_NS << shift;
        next = now + (delay < RETRY_MAX_NS ? delay : RETRY_MAX_NS);
        e->missed++;
    }
    tr__wheel_arm(&t->wheel, &e->node, next);
    return false;
}

void tr__msg_timers_fire(tr_system *sys, tr__msg_timers *t, int64_t now)
{
    if (atomic_load_explicit(&t->next_due, memory_order_relaxed) > now)
        return;
    for (;;) {
        tr__spin_lock(&t->lock);
        tr__wheel_node *n = tr__wheel_pop_due(&t->wheel, now);
        if (!n) {
            atomic_store_explicit(&t->next_due, tr__wheel_next(&t->wheel),
                                  memory_order_relaxed);
            tr__spin_unlock(&t->lock);
            return;
        }
        struct tr__msg_timer *e = timer_of(n);
        e->firing = true;
        tr_ref to = e->to;
        tr_msg m = e->msg;
        tr__spin_unlock(&t->lock);

        /* As tr_try_send, but keeping msg.from.  Nothing here runs the
         * application's code, so a cancel waiting for us cannot be our
         * own thread; target_put, which can, comes after the settling. */
        target tg;
        int rc = target_get(sys, to, &tg);
        if (!rc && !(rc = tr__mailbox_put(tg.mb, &m)))
            tr__mailbox_notify(tg.mb);
        tr__spin_lock(&t->lock);
        bool release = settle(t, e, rc, now);
        tr__spin_unlock(&t->lock);
        target_put(sys, to, &tg);
        if (release)
            tr_msg_release(&m);
    }
}

tr_deadline tr__msg_timers_sleep(tr__msg_timers *t, tr_deadline until)
{
    tr__spin_lock(&t->lock);
    /* Two lower bounds of the earliest deadline: the later is the better,
     * and only the hint is sure to be ahead of the last firing.  The
     * wheel moves only when it is popped, which fire skips while the
     * hint is ahead, so for a crowded slot armed meanwhile next() can be
     * the slot's start, long past: sleeping until then made the worker
     * spin until the first timer came due (up to a slot's width, 18 min
     * at level 5).  Moving the wheel here instead would cost a clock
     * read and a cascade under the lock that arms wait for. */
    int64_t next = tr__wheel_next(&t->wheel);
    int64_t hint = atomic_load_explicit(&t->next_due, memory_order_relaxed);
    if (hint > next)
        next = hint;
    if (next < until)
        until = next;
    atomic_store_explicit(&t->sleep_until, until, memory_order_relaxed);
    tr__spin_unlock(&t->lock);
    return until;
}

void tr__msg_timers_woke(tr__msg_timers *t)
{
    atomic_store_explicit(&t->sleep_until, 0, memory_order_relaxed);
}

void tr__msg_timers_stop(tr__msg_timers *t)
{
    /* One entry per lock hold: payload destructors run unlocked, and a
     * thread may still be cancelling. */
    for (uint32_t i = 0;; i++) {
        tr__spin_lock(&t->lock);
        if (i >= t->used) {
            atomic_store_explicit(&t->next_due, TR_FOREVER, memory_order_relaxed);
            tr__spin_unlock(&t->lock);
            return;
        }
        struct tr__msg_timer *e = entry_at(t, i);
        bool pending = tr__wheel_armed(&e->node);
        tr_msg m = e->msg;
        if (pending) {
            tr__wheel_cancel(&t->wheel, &e->node);
            recycle(t, e);
        }
        tr__spin_unlock(&t->lock);
        if (pending)
            tr_msg_release(&m);
    }
}

void tr__msg_timers_destroy(tr__msg_timers *t)
{
    for (unsigned k = 0; k < TR__MSG_TIMER_CHUNKS; k++)
        free(t->chunks[k]);
}
