/*
 * timer.h - deadlines of parked actors, one timing wheel per worker.
 *
 * Overview: an actor that parks with a finite deadline gets a timer on
 * the worker it parks on; that worker fires it.  A timer does not own the
 * actor's wait: when it fires it only *claims* the park by its token
 * (tr__actor_timeout), so a timer whose actor was woken earlier by a
 * message does nothing.  Each timer borrows the actor's ref so the actor
 * cannot be freed under it.  A park that ends early may cancel its timer
 * (tr__timers_cancel), which returns the borrow at once instead of at the
 * deadline.
 *
 * Implementation notes: the timers sit in a hierarchical timing wheel
 * (wheel.h; docs/timers.md), so adding, cancelling and firing cost O(1)
 * however many are pending, and they fire in exact deadline order.  Timer
 * entries come from slabs owned by the worker and are recycled through a
 * free list: in the steady state adding a timer allocates nothing.  Slabs
 * are kept until tr__timers_clear, so a worker's timer memory is its
 * high-water mark of pending timers, 64 bytes each.  Every function but
 * tr__timers_cancel_remote is for the owning worker's thread only (or for
 * whoever owns a tr__timers that no worker uses, as the tests and the
 * bench do).
 *
 * A park that resumes on another worker cannot touch the wheel that holds
 * its timer.  It queues a cancel request on a small bounded MPSC ring of
 * that wheel's owner, which carries them out before it next fires its
 * timers, and wakes the owner if it sleeps (tr__worker_cancel_queued):
 * an idle owner fires next at its earliest deadline, maybe an hour away,
 * and the timer's borrow kept the exited actor, and the payloads in its
 * mailbox, that long.  Without the ring every such park left a timer
 * pending until its deadline: a supervisor waiting 10 s for 100,000
 * exits, woken by each one on either worker, grew a slab of stale timers
 * per thousand parks.  If the ring is full the timer is left to fire,
 * which does nothing.
 */
#ifndef TR_TIMER_H
#define TR_TIMER_H

#include <ck_ring.h>
#include <stdbool.h>
#include <stdint.h>

#include "troupe/msg.h"
#include "troupe/time.h"
#include "wheel.h"

struct tr_actor;
struct tr_system;

typedef struct tr__timer {
    tr__wheel_node node;     /* armed while pending; free-list link otherwise */
    struct tr_actor *actor;
    tr_ref ref;              /* borrowed while the timer is pending */
    uint32_t token;
} tr__timer;

/* A request from another worker to cancel a park's timer. */
typedef struct tr__timer_cancel {
    tr__timer *timer;
    tr_ref ref;
    uint32_t token;
} tr__timer_cancel;

CK_RING_PROTOTYPE(tr_timer_cancel, tr__timer_cancel)

#define TR__TIMER_CANCELS 64 /* ring size, a power of two: holds 63 requests */

/* Zero-filled memory is an empty set of timers that takes no remote
 * cancels; tr__timers_init makes it take them, tr__timers_clear ends it. */
typedef struct tr__timers {
    tr__wheel wheel;
    struct ck_ring cancels;      /* tr__timer_cancel, from other workers */
    tr__timer_cancel cancel_buf[TR__TIMER_CANCELS];
    tr__timer *free;             /* recycled entries, linked by node.next */
    struct tr__timer_slab *slabs;
    uint32_t owned;              /* entries in all slabs */
    uint32_t len;                /* pending timers; 0 lets the scheduler skip fire */
} tr__timers;

void tr__timers_init(tr__timers *t);

/*
 * Add a timer that times out the park (`a`, `token`) at `deadline`; it
 * borrows `ref` (the actor's) until it fires or is cancelled.  Returns 0,
 * TR_ENOMEM (a new slab could not be allocated; nothing changed) or
 * TR_ENOACTOR (`ref` is stale).
 */
int tr__timers_add(struct tr_system *sys, tr__timers *t, tr_deadline deadline,
                   struct tr_actor *a, tr_ref ref, uint32_t token);

/*
 * tr__timers_add, which also stores the timer in *out on success: a
 * handle for tr__timers_cancel.  The handle stays safe to pass to cancel
 * after the timer has fired, for as long as `t` lives, because entries
 * are recycled but not freed before tr__timers_clear.
 */
int tr__timers_add_handle(struct tr_system *sys, tr__timers *t,
                          tr_deadline deadline, struct tr_actor *a, tr_ref ref,
                          uint32_t token, tr__timer **out);

/*
 * Cancel `timer` if it is still the pending timer of the park (`ref`,
 * `token`) in `t`: unlink it, drop its borrow of the actor's ref (which
 * may destroy a dead actor, as firing does) and recycle the entry.
 * Returns true if it did, false if the timer had already fired or been
 * cancelled (its entry may since serve another park; it is left alone).
 * Only the worker that owns `t` may call it.
 */
bool tr__timers_cancel(struct tr_system *sys, tr__timers *t, tr__timer *timer,
                       tr_ref ref, uint32_t token);

/* tr__timers_cancel from any other thread: queued for the owner, who
 * carries it out before its next firing (the caller wakes the owner:
 * tr__worker_cancel_queued); false (left to fire) if the queue is full. */
bool tr__timers_cancel_remote(tr__timers *t, tr__timer *timer, tr_ref ref,
                              uint32_t token);

/*
 * Whether queued remote cancels wait for tr__timers_fire, so that the
 * owner must not sleep.  The scheduler fires only while a timer is
 * pending; with none, what is queued is stale and may wait (an owner
 * that stayed awake for it would never drain it, and spin).  Owner only.
 */
bool tr__timers_cancels_waiting(const tr__timers *t);

/* Carry out the queued remote cancels, then fire every timer due at
 * `now`, earliest deadline first. */
void tr__timers_fire(struct tr_system *sys, tr__timers *t, int64_t now);

/*
 * When the next timer may be due: never later than the earliest deadline,
 * and after tr__timers_fire(now) always later than `now` (a worker that
 * sleeps until then never spins; see tr__wheel_next for how early it can
 * be).  TR_FOREVER if no timer is pending.
 */
tr_deadline tr__timers_next(const tr__timers *t);

/* Drop every timer without firing and free the entries (teardown: the
 * borrows are not returned, the actors are destroyed regardless). */
void tr__timers_clear(tr__timers *t);

#endif
