/* futex.c - Linux futex wait/wake with absolute monotonic deadlines. */
#include "futex.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "troupe/error.h"

int tr__futex_wait(_Atomic uint32_t *word, uint32_t expected,
                   tr_deadline deadline)
{
    struct timespec ts, *tsp = NULL;

    if (deadline != TR_FOREVER) {
        if (tr_now() >= deadline)
            return TR_ETIMEDOUT;
        ts.tv_sec = deadline / 1000000000;
        ts.tv_nsec = deadline % 1000000000;
        tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, so a
     * retry after a spurious wake-up never stretches the deadline. */
    long rc = syscall(SYS_futex, (uint32_t *)word,
                      FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, tsp,
                      NULL, FUTEX_BITSET_MATCH_ANY);
    if (rc == -1 && errno == ETIMEDOUT)
        return TR_ETIMEDOUT;
    return 0;
}

void tr__futex_wake(_Atomic uint32_t *word, int count)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG,
            count, NULL, NULL, 0);
}
