/*
 * sleep.c - tr_sleep: an actor parks on a deadline; a thread blocks.
 *
 * The park is claimed through its token, by the park timer at the
 * deadline (tr__actor_timeout) or by tr_cancel (tr__actor_interrupt),
 * whichever comes first; a message arrival does not end it.  So after
 * the switch a sleeper that is not cancelled was woken by its timer,
 * which fires only once the deadline has passed: never early.
 */
#include <errno.h>
#include <time.h>

#include "runtime.h"

static int sleep_thread(tr_deadline until)
{
    struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
    /* Absolute, so a signal that interrupts it does not stretch it. */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
    return 0;
}

int tr__sleep_until(tr_deadline until)
{
    tr__worker *w = tr__worker_now();
    if (until <= 0 || (until != TR_FOREVER && tr_now() >= until))
        return 0;
    struct tr_actor *a = w ? w->current : NULL;
    if (w && !a)
        return TR_ECONTEXT;
    if (a && tr__actor_cancelled(a))
        return TR_ECANCELED;
    tr__owner_release_senders(a);
    if (!a)
        return sleep_thread(until);
    uint32_t token;
    int rc = tr__actor_park_begin(a, TR__PARK_SLEEP, until, &token);
    if (rc)
        return rc;
    /* The park is published (its token is stored, seq_cst): a tr_cancel
     * from now on claims it, and one from before shows in the flag. */
    if (tr__actor_cancelled(a) && tr__actor_claim(a, token)) {
        tr__actor_park_cancel(a, token);
        return TR_ECANCELED;
    }
    tr__actor_park_switch(a);
    return tr__actor_cancelled(a) ? TR_ECANCELED : 0;
}

int tr_sleep(tr_deadline until)
{
    return tr__cancel_result(tr__sleep_until(until));
}
