/*
 * timers - arm and cancel a timer while 1,000,000 others are armed.
 *
 * Steps 6 and 7 measure what applications call: message timers
 * (tr_send_after, tr_timer_cancel), armed and cancelled by the main
 * thread, which is not a worker, through the real system.  Steps 1 to 5
 * measure the layers below on their own.
 *
 * The park timers of a worker (actors/timer.h) are measured directly,
 * on the main thread, with a tr__timers of the benchmark's own: each
 * timer borrows the ref of a real actor (parked in tr_recv), as the timer
 * of a parked actor does.  The token is odd, never that of a park, so a
 * timer that fires claims nothing and the actor sleeps on.
 *
 *   1. Arm 1,000,000 timers (BENCH_SCALE scales it) with deadlines spread
 *      over 60 s starting 10 s ahead, so none comes due during the run.
 *      RSS growth / timers is rss_bytes_per_timer.
 *   2. The value: with those armed, arm a batch of 1,024 timers with
 *      deadlines 1 ms to 1 s ahead (a typical receive timeout), then
 *      cancel them all, over and over: ns per arm + cancel pair.  The
 *      pairs include taking and returning the ref's borrow (two atomic
 *      operations on the actor's slot), which every park timer pays.
 *   3. wheel_ns: the same pairs on bare wheel nodes (actors/wheel.h),
 *      with 1,000,000 other nodes armed: the wheel's own share.
 *   4. expire_ns: the clock jumps to the end of the 60 s in 1,000 steps
 *      and every one of the 1,000,000 nodes of step 3 is popped: ns per
 *      expired node, including the cascades and the sorting of each
 *      tick's nodes.  Checked: each pops at or after its deadline, in
 *      (deadline, arming) order, and the count is exact.
 *   5. fire_ns: the timers of step 1 are fired the same way (each one
 *      claims nothing and returns its borrow): ns per fired timer.
 *      Checked: none is left pending, and the actor then exits.
 *   6. send_after_ns: tr_send_after 1,000,000 word messages to a second
 *      actor, due 10 s to 70 s ahead (send_after_rss_bytes_per_timer is
 *      the RSS growth per timer); then, with those pending, arm batches
 *      of 1,024 due 1 ms to 1 s ahead and cancel each batch with
 *      tr_timer_cancel: ns per arm + cancel pair.  This includes the
 *      target check at arming, the home worker's lock, and the futex
 *      wake-ups of that worker when a new deadline is its earliest.
 *      Checked: a pair's timer is delivered exactly when its cancel
 *      returns TR_ENOTIMER (send_fired_before_cancel: the main thread
 *      was preempted for over a millisecond in between; normally 0).
 *   7. send_cancel_ns: tr_timer_cancel on each of the 1,000,000: ns per
 *      cancel.  Checked: every cancel returns 0.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "../actors/runtime.h"
#include "../actors/wheel.h"

enum { TAG_STOP = 1, TAG_PROBE = 2, TAG_TIMER = 3 };

#define BATCH 1024
#define SPREAD_NS (60 * 1000000000ll)
#define AHEAD_NS (10 * 1000000000ll)
#define STEPS 1000
#define TOKEN 1u /* odd: matches no park */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

/* splitmix64 */
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int wait_for_stop(tr_actor *self)
{
    (void)self;
    bench_await(TAG_STOP);
    return 0;
}

/* Messages of step 6's timers that fired before their cancel (a main
 * thread preempted for over a millisecond between the two). */
static atomic_ullong timer_msgs;

static int count_until_stop(tr_actor *self)
{
    (void)self;
    for (;;) {
        tr_msg m;
        bench_check(tr_recv(&m, TR_FOREVER), "recv");
        if (m.tag == TAG_STOP)
            return 0;
        if (m.tag != TAG_TIMER)
            bench_fail("got a stray message (tag %llu)", (unsigned long long)m.tag);
        atomic_fetch_add(&timer_msgs, 1);
    }
}

/* Deadlines for the measured pairs, made before the clock starts. */
static int64_t probe_deadlines[BATCH];

static void make_probe_deadlines(int64_t base)
{
    for (int i = 0; i < BATCH; i++)
        probe_deadlines[i] = base + 1000000 + (int64_t)(rnd() % 999000000);
}

/* Steps 1, 2 and 5; returns ns per pair, and the rest through pointers. */
static double park_timers(tr_system *sys, tr_ref ref, uint64_t n, uint64_t pairs,
                          double *rss_per_timer, double *fire_ns)
{
    uint8_t kind;
    struct tr_actor *a = tr__slot_peek(&sys->slots, ref, &kind);
    if (!a)
        bench_fail("the actor is gone");
    tr__timers t = {0};
    int64_t base = tr_now();

    uint64_t rss0 = bench_rss_bytes();
    for (uint64_t i = 0; i < n; i++)
        bench_check(tr__timers_add(sys, &t, base + AHEAD_NS + (int64_t)(rnd() % SPREAD_NS),
                                   a, ref, TOKEN),
                    "tr__timers_add");
    *rss_per_timer = (double)(bench_rss_bytes() - rss0) / (double)n;

    tr__timer *batch[BATCH];
    make_probe_deadlines(base);
    int64_t t0 = tr_now();
    for (uint64_t done = 0; done < pairs; done += BATCH) {
        for (int i = 0; i < BATCH; i++)
            bench_check(tr__timers_add_handle(sys, &t, probe_deadlines[i], a, ref,
                                              TOKEN, &batch[i]),
                        "tr__timers_add_handle");
        for (int i = 0; i < BATCH; i++)
            if (!tr__timers_cancel(sys, &t, batch[i], ref, TOKEN))
                bench_fail("a pending timer did not cancel");
    }
    double pair_ns = (double)(tr_now() - t0) / (double)pairs;
    if (t.len != n)
        bench_fail("%u timers pending, want %llu", t.len, (unsigned long long)n);

    int64_t f0 = tr_now();
    for (int s = 1; s <= STEPS; s++)
        tr__timers_fire(sys, &t, base + AHEAD_NS + SPREAD_NS / STEPS * s);
    *fire_ns = (double)(tr_now() - f0) / (double)n;
    if (t.len != 0 || tr__timers_next(&t) != TR_FOREVER)
        bench_fail("%u timers left after the last deadline", t.len);
    tr__timers_clear(&t);
    return pair_ns;
}

/* Steps 3 and 4 on bare nodes; returns ns per pair. */
static double wheel_nodes(uint64_t n, uint64_t pairs, double *expire_ns)
{
    tr__wheel_node *nodes = calloc(n + BATCH, sizeof *nodes), *probes = nodes + n;
    if (!nodes)
        bench_fail("out of memory");
    tr__wheel w;
    int64_t base = tr_now();
    tr__wheel_init(&w, base);
    for (uint64_t i = 0; i < n; i++)
        tr__wheel_arm(&w, &nodes[i], base + AHEAD_NS + (int64_t)(rnd() % SPREAD_NS));

    make_probe_deadlines(base);
    int64_t t0 = tr_now();
    for (uint64_t done = 0; done < pairs; done += BATCH) {
        for (int i = 0; i < BATCH; i++)
            tr__wheel_arm(&w, &probes[i], probe_deadlines[i]);
        for (int i = 0; i < BATCH; i++)
            tr__wheel_cancel(&w, &probes[i]);
    }
    double pair_ns = (double)(tr_now() - t0) / (double)pairs;

    uint64_t expired = 0;
    tr__wheel_node *last = NULL;
    int64_t e0 = tr_now();
    for (int s = 1; s <= STEPS; s++) {
        int64_t now = base + AHEAD_NS + SPREAD_NS / STEPS * s;
        for (tr__wheel_node *x; (x = tr__wheel_pop_due(&w, now)); last = x) {
            if (x->deadline > now)
                bench_fail("a node expired %lld ns early", (long long)(x->deadline - now));
            if (last && (x->deadline < last->deadline ||
                         (x->deadline == last->deadline && x->seq < last->seq)))
                bench_fail("nodes expired out of deadline order");
            expired++;
        }
    }
    *expire_ns = (double)(tr_now() - e0) / (double)n;
    if (expired != n || tr__wheel_next(&w) != INT64_MAX)
        bench_fail("%llu nodes expired, want %llu", (unsigned long long)expired,
                   (unsigned long long)n);
    free(nodes);
    return pair_ns;
}

/* Steps 6 and 7; returns ns per pair, and the rest through pointers. */
static double message_timers(tr_system *sys, tr_ref to, uint64_t n, uint64_t pairs,
                             double *rss_per_timer, double *cancel_ns, uint64_t *fired)
{
    tr_timer_ref *armed = malloc(n * sizeof *armed), batch[BATCH];
    if (!armed)
        bench_fail("out of memory");
    /* Its pages are not the timers': touch them now (with a fill that
     * the compiler cannot turn into a calloc, which touches nothing). */
    memset(armed, 0xff, n * sizeof *armed);
    tr_msg m = tr_msg_words(TAG_TIMER, 0, 0);
    int64_t base = tr_now();
    uint64_t rss0 = bench_rss_bytes();
    for (uint64_t i = 0; i < n; i++)
        bench_check(tr_send_after(sys, to, &m, base + AHEAD_NS + (int64_t)(rnd() % SPREAD_NS),
                                  &armed[i]),
                    "tr_send_after");
    *rss_per_timer = (double)(bench_rss_bytes() - rss0) / (double)n;

    /* Relative to each batch's start: a batch takes far less than 1 ms,
     * so its timers come due before their cancel only if this thread is
     * preempted for longer (counted, and checked against deliveries). */
    make_probe_deadlines(0);
    int64_t t0 = tr_now();
    for (uint64_t done = 0; done < pairs; done += BATCH) {
        int64_t now = tr_now();
        for (int i = 0; i < BATCH; i++)
            bench_check(tr_send_after(sys, to, &m, now + probe_deadlines[i], &batch[i]),
                        "tr_send_after");
        for (int i = 0; i < BATCH; i++) {
            int rc = tr_timer_cancel(sys, batch[i]);
            if (rc == TR_ENOTIMER)
                (*fired)++;
            else
                bench_check(rc, "tr_timer_cancel");
        }
    }
    double pair_ns = (double)(tr_now() - t0) / (double)pairs;

    int64_t c0 = tr_now();
    for (uint64_t i = 0; i < n; i++)
        bench_check(tr_timer_cancel(sys, armed[i]), "tr_timer_cancel");
    *cancel_ns = (double)(tr_now() - c0) / (double)n;
    free(armed);
    return pair_ns;
}

int main(void)
{
    bench_set_name("timers");
    uint64_t n = bench_count(1000000, 1);
    uint64_t pairs = bench_count(8u << 20, BATCH) / BATCH * BATCH;
    tr_system *sys = bench_system();
    tr_ref ref, target;
    bench_check(tr_spawn_loop(sys, wait_for_stop, NULL, &ref), "spawn");
    bench_check(tr_spawn_loop(sys, count_until_stop, NULL, &target), "spawn");

    bench_progress("%llu armed, %llu arm+cancel pairs", (unsigned long long)n,
                   (unsigned long long)pairs);
    double rss_per_timer, fire_ns, expire_ns;
    double pair_ns = park_timers(sys, ref, n, pairs, &rss_per_timer, &fire_ns);
    double wheel_ns = wheel_nodes(n, pairs, &expire_ns);
    double send_rss_per_timer, send_cancel_ns;
    uint64_t fired = 0;
    double send_ns = message_timers(sys, target, n, pairs, &send_rss_per_timer,
                                    &send_cancel_ns, &fired);

    tr_msg stop = tr_msg_words(TAG_STOP, 0, 0);
    bench_check(tr_send(sys, ref, &stop, TR_FOREVER), "send stop");
    bench_check(tr_send(sys, target, &stop, TR_FOREVER), "send stop");
    tr_ref both[2] = {ref, target};
    uint64_t retries = bench_wait_exited(sys, both, 2, TAG_PROBE);
    if (atomic_load(&timer_msgs) != fired)
        bench_fail("%llu timer messages arrived, %llu timers fired before their cancel",
                   (unsigned long long)atomic_load(&timer_msgs), (unsigned long long)fired);
    unsigned workers = tr_system_workers(sys);
    tr_system_free(sys);
    bench_report("timers", pair_ns, "ns/op", workers, n,
                 "\"armed\":%llu,\"pairs\":%llu,\"bytes_per_timer\":%zu,"
                 "\"rss_bytes_per_timer\":%.1f,\"wheel_ns\":%.3f,\"wheel_node_bytes\":%zu,"
                 "\"expire_ns\":%.3f,\"fire_ns\":%.3f,\"send_after_ns\":%.3f,"
                 "\"send_after_rss_bytes_per_timer\":%.1f,\"send_cancel_ns\":%.3f,"
                 "\"send_fired_before_cancel\":%llu,\"exit_probe_retries\":%llu",
                 (unsigned long long)n, (unsigned long long)pairs, sizeof(tr__timer),
                 rss_per_timer, wheel_ns, sizeof(tr__wheel_node), expire_ns, fire_ns,
                 send_ns, send_rss_per_timer, send_cancel_ns, (unsigned long long)fired,
                 (unsigned long long)retries);
    return 0;
}
