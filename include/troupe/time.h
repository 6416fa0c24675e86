/*
 * troupe/time.h - deadlines.
 *
 * Every blocking troupe call takes a deadline: an absolute time on the
 * monotonic clock, in nanoseconds.  TR_NOW means "do not wait" (the call
 * polls once) and TR_FOREVER means "wait as long as it takes".  Absolute
 * deadlines compose: a function that makes several blocking calls passes
 * the same deadline to each and the whole sequence ends on time.
 *
 * A call of an actor whose deadline (other than TR_NOW) has come before
 * it could wait yields its worker once before it returns TR_ETIMEDOUT: a
 * loop that retries with deadlines too short to wait in would otherwise
 * keep the worker from the actors that could end the wait.  TR_NOW polls
 * without yielding.
 */
#ifndef TROUPE_TIME_H
#define TROUPE_TIME_H

#include <stdint.h>

#include "troupe/export.h"

typedef int64_t tr_deadline;

#define TR_NOW ((tr_deadline)0)
#define TR_FOREVER ((tr_deadline)INT64_MAX)

/* tr_now - the monotonic clock in nanoseconds.  Thread-safe. */
TR_API int64_t tr_now(void);

/*
 * tr_after_ns - the deadline `ns` nanoseconds from now.  Saturates to
 * TR_FOREVER instead of overflowing; a negative `ns` gives a deadline in
 * the past (a call given it waits no more than with TR_NOW, but yields
 * as above).
 */
TR_API tr_deadline tr_after_ns(int64_t ns);

/* tr_after_ms - the deadline `ms` milliseconds from now (see tr_after_ns). */
TR_API tr_deadline tr_after_ms(int64_t ms);

#endif
