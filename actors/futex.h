/*
 * futex.h - block a thread on a 32-bit word until it changes or until a
 * deadline.  Used where a real thread must wait: parked workers and
 * threads that are not workers.  Actors never call these.
 */
#ifndef TR_FUTEX_H
#define TR_FUTEX_H

#include <stdatomic.h>
#include <stdint.h>

#include "troupe/time.h"

/*
 * Sleep while *word == expected, until woken or until `deadline`.
 * Returns 0 when woken (or when the word had already changed; spurious
 * wake-ups are possible) and TR_ETIMEDOUT once the deadline has passed.
 */
int tr__futex_wait(_Atomic uint32_t *word, uint32_t expected,
                   tr_deadline deadline);

/* Wake up to `count` threads sleeping on `word`. */
void tr__futex_wake(_Atomic uint32_t *word, int count);

#endif
