/*
 * msg_timer.h - message timers (tr_send_after, tr_send_every): deadlines
 * that deliver a message instead of waking a parked actor.
 *
 * Overview: every worker keeps a set of message timers, its *home* set,
 * beside its park timers (timer.h).  A timer lives in the home set of the
 * worker that its target's ref hashes to, so all the timers of one target
 * are on one timing wheel and reach it in deadline order.  The home
 * worker fires them in its scheduler loop, as it fires park timers; any
 * thread arms and cancels them.
 *
 * Usage (the worker's side, in sched.c):
 *     if (tr__msg_timers_pending(&w->msg_timers))
 *         tr__msg_timers_fire(sys, &w->msg_timers, now);
 *     ...
 *     until = tr__msg_timers_sleep(&w->msg_timers, until);
 *     futex_wait(&w->wake_word, 0, until);
 *     tr__msg_timers_woke(&w->msg_timers);
 *
 * Implementation notes: a set is guarded by a spinlock, which any thread
 * takes to arm or cancel and the home worker takes to fire; a delivery
 * itself runs outside the lock, with the timer marked as firing, so the
 * lock is held for a few dozen nanoseconds at a time.  The rejected
 * alternative, a lock-free inbox per worker that arms and cancels are
 * posted to, keeps the wheel single-threaded but makes a cancel unable
 * to unlink its timer, or to know whether it had fired, before the worker
 * gets round to it (docs/timers.md).  Entries are recycled through a free
 * list and live in chunks that are kept until the system is freed, so a
 * handle is checked against the entry's generation without ever touching
 * freed memory.  A worker that sleeps records until when (sleep_until);
 * an arm with an earlier deadline wakes it.
 */
#ifndef TR_MSG_TIMER_H
#define TR_MSG_TIMER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "spin.h"
#include "troupe/time.h"
#include "wheel.h"

struct tr_system;
struct tr__msg_timer;

/* Chunk k holds 64 << k entries: 27 chunks cover 2^32 entries. */
#define TR__MSG_TIMER_CHUNKS 27

/* Zero-filled memory is an empty set; tr__msg_timers_destroy frees it. */
typedef struct tr__msg_timers {
    tr__spin lock;
    /* A lower bound of the earliest deadline (TR_FOREVER: none pending;
     * the zero it starts at only costs one look), written under the lock
     * and read by the home worker without it. */
    _Atomic int64_t next_due;
    /* The home worker's futex deadline while it is parked, 0 while it is
     * awake (a parked worker's deadline is always later than now > 0).
     * Written under the lock, except the reset to 0 on waking. */
    _Atomic int64_t sleep_until;
    uint32_t first_gen;              /* as the system's slots' (slots.h) */
    /* Under the lock. */
    uint32_t used;                   /* entries ever handed out */
    struct tr__msg_timer *free;      /* recycled entries */
    struct tr__msg_timer *chunks[TR__MSG_TIMER_CHUNKS];
    tr__wheel wheel;
} tr__msg_timers;

/* Whether a timer may be pending (a hint for the home worker's loop). */
static inline bool tr__msg_timers_pending(tr__msg_timers *t)
{
    return atomic_load_explicit(&t->next_due, memory_order_relaxed) != TR_FOREVER;
}

/* Home worker: deliver every timer due at `now`, earliest first. */
void tr__msg_timers_fire(struct tr_system *sys, tr__msg_timers *t, int64_t now);

/*
 * Home worker, about to sleep on its futex until `until`: returns the
 * earlier of `until` and its next message timer, and records it, so that
 * a timer armed with an earlier deadline wakes it (tr__worker_kick).
 * Never early for a timer, and later than the `now` of the last
 * tr__msg_timers_fire unless a timer armed since is due: sleeping until
 * then never spins.
 */
tr_deadline tr__msg_timers_sleep(tr__msg_timers *t, tr_deadline until);

/* Home worker, back from its futex: arms no longer need to wake it. */
void tr__msg_timers_woke(tr__msg_timers *t);

/* Shutdown, once the workers have stopped: end every pending timer and
 * release its payload.  Handles go stale; the memory stays. */
void tr__msg_timers_stop(tr__msg_timers *t);

/* Free the set's memory (the system is being freed: no handle is used). */
void tr__msg_timers_destroy(tr__msg_timers *t);

#endif
