/*
 * timers - arm and cancel a timer while 1,000,000 others are armed.
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
 */
#include <stdlib.h>

#include "bench_common.h"
#include "../actors/runtime.h"
#include "../actors/wheel.h"

enum { TAG_STOP = 1, TAG_PROBE = 2 };

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
            if (!tr__timers_cancel(sys, &t, batch[i], a, TOKEN))
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

int main(void)
{
    bench_set_name("timers");
    uint64_t n = bench_count(1000000, 1);
    uint64_t pairs = bench_count(8u << 20, BATCH) / BATCH * BATCH;
    tr_system *sys = bench_system();
    tr_ref ref;
    bench_check(tr_spawn_loop(sys, wait_for_stop, NULL, &ref), "spawn");

    bench_progress("%llu armed, %llu arm+cancel pairs", (unsigned long long)n,
                   (unsigned long long)pairs);
    double rss_per_timer, fire_ns, expire_ns;
    double pair_ns = park_timers(sys, ref, n, pairs, &rss_per_timer, &fire_ns);
    double wheel_ns = wheel_nodes(n, pairs, &expire_ns);

    tr_msg stop = tr_msg_words(TAG_STOP, 0, 0);
    bench_check(tr_send(sys, ref, &stop, TR_FOREVER), "send stop");
    uint64_t retries = bench_wait_exited(sys, &ref, 1, TAG_PROBE);
    unsigned workers = tr_system_workers(sys);
    tr_system_free(sys);
    bench_report("timers", pair_ns, "ns/op", workers, n,
                 "\"armed\":%llu,\"pairs\":%llu,\"bytes_per_timer\":%zu,"
                 "\"rss_bytes_per_timer\":%.1f,\"wheel_ns\":%.3f,\"wheel_node_bytes\":%zu,"
                 "\"expire_ns\":%.3f,\"fire_ns\":%.3f,\"exit_probe_retries\":%llu",
                 (unsigned long long)n, (unsigned long long)pairs, sizeof(tr__timer),
                 rss_per_timer, wheel_ns, sizeof(tr__wheel_node), expire_ns, fire_ns,
                 (unsigned long long)retries);
    return 0;
}
