/*
 * timer.h - deadlines of parked actors, one binary heap per worker.
 *
 * An actor that parks with a finite deadline is put in the heap of the
 * worker it parks on; that worker fires it.  A timer does not own the
 * actor's wait: when it fires it only *claims* the park by its token
 * (tr__actor_timeout), so a timer whose actor was woken earlier by a
 * message does nothing.  Each timer borrows the actor's ref so the actor
 * cannot be freed under it.  Cancelled timers are not removed; they stay
 * until their deadline (issue: a hierarchical wheel replaces this).
 */
#ifndef TR_TIMER_H
#define TR_TIMER_H

#include <stdint.h>

#include "troupe/msg.h"
#include "troupe/time.h"

struct tr_actor;
struct tr_system;

typedef struct tr__timer {
    tr_deadline deadline;
    struct tr_actor *actor;
    tr_ref ref;          /* borrowed while the timer is pending */
    uint32_t token;
} tr__timer;

typedef struct tr__timers {
    tr__timer *heap;
    uint32_t len, cap;
} tr__timers;

/* Add a timer; borrows `ref`.  0, TR_ENOMEM or TR_ENOACTOR. */
int tr__timers_add(struct tr_system *sys, tr__timers *t, tr_deadline deadline,
                   struct tr_actor *a, tr_ref ref, uint32_t token);

/* Fire every timer due at `now`. */
void tr__timers_fire(struct tr_system *sys, tr__timers *t, int64_t now);

/* The earliest deadline, or TR_FOREVER. */
tr_deadline tr__timers_next(const tr__timers *t);

/* Drop every timer without firing (teardown). */
void tr__timers_clear(tr__timers *t);

#endif
