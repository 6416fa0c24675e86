/*
 * troupe/timer.h - sleeping, and messages sent at a deadline.
 *
 * tr_sleep parks the calling actor until a deadline; its worker runs
 * other actors meanwhile.  A message timer (tr_send_after, tr_send_every)
 * delivers a message to an actor or mailbox when its deadline comes, once
 * or every period, until it is cancelled through its handle or its target
 * is gone.  All deadlines are absolute monotonic nanoseconds (troupe/time.h).
 *
 * Guarantees of message timers:
 *   - Never early: a message is delivered at or after its deadline, and
 *     a periodic timer's k-th tick at or after first + k * period.
 *   - Order: the timers of one target are delivered in deadline order,
 *     equal deadlines in the order they were armed, whoever armed them
 *     (all timers of a target live on one worker's timing wheel).  A
 *     one-shot that finds the mailbox full is retried (below), so it may
 *     arrive after timers that came due while it waited.
 *   - A delivery never blocks a worker.  A full mailbox: a one-shot timer
 *     tries again 100 us later, then at doubling intervals of at most
 *     10 ms, until it is delivered or its target is gone; a periodic
 *     timer skips that tick (as Go's Ticker drops ticks for a slow
 *     receiver) and counts it (tr_timer_missed).  A periodic timer also
 *     skips the ticks its worker was too late for, and never catches up
 *     with a burst.
 *   - A target that has exited (or a mailbox that is closed or freed)
 *     ends the timer when it next comes due: a one-shot's payload is then
 *     released with tr_msg_release.  A timer holds only the target's
 *     ref, never the target itself, so an exited actor is freed at once.
 *   - Cancel: once tr_timer_cancel has returned 0 the timer's message is
 *     never delivered again (not even by a delivery that was under way:
 *     cancel waits for it to finish, a matter of microseconds).
 *   - Nothing leaks: tr_system_shutdown releases the payloads of the
 *     timers still pending.
 *
 * A message timer costs 120 bytes while pending, and arming or
 * cancelling one costs the same whether 10 or 1,000,000 are pending (see
 * docs/timers.md for the numbers).
 */
#ifndef TROUPE_TIMER_H
#define TROUPE_TIMER_H

#include <stdint.h>

#include "troupe/export.h"
#include "troupe/msg.h"
#include "troupe/system.h"
#include "troupe/time.h"

/*
 * A handle to a message timer: 64 bits with a generation, like a tr_ref.
 * A handle whose timer has ended is stale for good and always safe to
 * pass: calls on it return TR_ENOTIMER.
 */
typedef uint64_t tr_timer_ref;

/* No timer; never the handle of one. */
#define TR_TIMER_NONE ((tr_timer_ref)0)

/*
 * tr_sleep - wait until `until`.  In an actor, the actor parks: it keeps
 * its stack but not its worker, which runs other actors meanwhile, and it
 * may resume on another worker.  TR_FOREVER sleeps until cancelled.  A
 * thread that is not a worker blocks instead (clock_nanosleep), as every
 * troupe call that waits does on such threads.
 * Returns 0 once `until` has come (at once if it already has, even for a
 * cancelled actor: calls that need not wait still complete, see
 * tr_cancel), TR_ECANCELED if the actor is or gets cancelled (at once),
 * TR_ENOMEM (no stack to go on with), or TR_ECONTEXT (a worker thread
 * outside an actor, such as a payload destructor that the runtime runs).
 */
TR_API int tr_sleep(tr_deadline until);

/*
 * tr_send_after - deliver a copy of `msg` to `to` (an actor or a mailbox)
 * at `when`, as tr_try_send would, except that msg->from is the ref of the
 * caller of tr_send_after (the one tr_send would stamp: the calling actor,
 * the calling thread's mailbox, or TR_REF_NONE), so the target can answer
 * whoever armed the timer.  `when` may be in the past (delivered as soon
 * as the worker gets to it) or TR_FOREVER (never, until cancelled).
 * Ownership: on success the timer owns the payload until it is delivered
 * (then the receiver owns it) or the timer ends otherwise (cancel, target
 * gone, shutdown: then it is released); on error the caller still owns it.
 * On success *out (if not NULL) receives the handle.  Any thread may call
 * it, worker or not.
 * Returns 0, TR_EINVAL (NULL sys or msg), TR_ENOACTOR (no such target, or
 * it has exited), TR_ECLOSED (a closed mailbox), TR_ESHUTDOWN, or
 * TR_ENOMEM.
 */
TR_API int tr_send_after(tr_system *sys, tr_ref to, const tr_msg *msg,
                         tr_deadline when, tr_timer_ref *out);

/*
 * tr_send_every - deliver a copy of `msg` to `to` at `first`, then every
 * `period_ns` after it (at first + k * period_ns), until the timer is
 * cancelled or `to` is gone; a `first` already past starts the ticks
 * now.  Each tick is delivered as by tr_send_after;
 * a tick that finds the mailbox full, or that its worker reached more
 * than a period late, is skipped and counted (tr_timer_missed).  Every
 * tick carries the same payload, so it may not own one: msg->free_fn
 * must be NULL (word payloads, or a pointer whose lifetime the caller
 * manages).  Any thread may call it.
 * Returns 0, TR_EINVAL (NULL sys or msg, period_ns <= 0, or a payload
 * destructor), TR_ENOACTOR, TR_ECLOSED, TR_ESHUTDOWN, or TR_ENOMEM.
 */
TR_API int tr_send_every(tr_system *sys, tr_ref to, const tr_msg *msg,
                         int64_t period_ns, tr_deadline first,
                         tr_timer_ref *out);

/*
 * tr_timer_cancel - stop a pending timer: its message is not delivered
 * (again) once this returns 0, and a one-shot's payload has been released
 * with tr_msg_release.  Any thread may call it.
 * Returns 0, TR_EINVAL (NULL sys), or TR_ENOTIMER: the timer has ended
 * (a one-shot was delivered, the timer was cancelled, its target was
 * found gone, the system has shut down) or the handle never named one.
 */
TR_API int tr_timer_cancel(tr_system *sys, tr_timer_ref timer);

/*
 * tr_timer_missed - how many times a pending timer came due without
 * delivering: a one-shot's attempts that found the mailbox full, a
 * periodic timer's skipped ticks.  Any thread may call it.
 * Returns 0, TR_EINVAL (NULL sys or missed) or TR_ENOTIMER.
 */
TR_API int tr_timer_missed(tr_system *sys, tr_timer_ref timer,
                           uint64_t *missed);

#endif
