/* clock.c - the monotonic clock and deadline arithmetic. */
#include <time.h>

#include "troupe/time.h"

int64_t tr_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

tr_deadline tr_after_ns(int64_t ns)
{
    int64_t now = tr_now();
    if (ns > 0 && now > TR_FOREVER - ns)
        return TR_FOREVER;
    return now + ns;
}

tr_deadline tr_after_ms(int64_t ms)
{
    if (ms > INT64_MAX / 1000000)
        return TR_FOREVER;
    if (ms < INT64_MIN / 1000000)
        ms = INT64_MIN / 1000000;
    return tr_after_ns(ms * 1000000);
}
