/*
 * idle_cpu - what does a system with nothing to do cost in CPU?
 *
 * Start a system with the default workers, spawn 1,000 handler actors
 * that wait for a message, let it settle, then sleep 2 s in the main
 * thread and measure the process's user + system CPU time over that
 * wall time (getrusage).  value = CPU time / wall time in percent of one
 * core; a runtime whose idle workers park should be near 0.
 *
 * Afterwards each actor gets one message, confirms to the main thread
 * and exits: this checks that parked workers wake up for new work, and
 * that every actor was alive and got exactly one message.
 */
#include <stdlib.h>
#include <time.h>

#include "bench_common.h"

enum { TAG_PING = 1, TAG_BYE = 2 };

#define SETTLE_MS 100
#define MEASURE_MS 2000

static tr_ref report;

static int idler(tr_actor *self, tr_msg *m)
{
    uint64_t id = (uint64_t)(uintptr_t)tr_actor_state(self);
    if (m->tag != TAG_PING)
        bench_fail("actor %llu got a stray message", (unsigned long long)id);
    tr_msg bye = tr_msg_words(TAG_BYE, id, 0);
    bench_check(tr_send(tr_actor_system(self), report, &bye, TR_FOREVER), "send bye");
    return TR_STOP;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int main(void)
{
    bench_set_name("idle_cpu");
    uint64_t n = bench_count(1000, 1);
    tr_system *sys = bench_system();
    /* Room for every confirmation: the actors never wait on us. */
    tr_mailbox *mb = bench_mailbox(sys, (uint32_t)(n < (1u << 20) ? n : (1u << 20)));
    report = tr_mailbox_ref(mb);
    tr_ref *refs = calloc(n, sizeof *refs);
    unsigned char *seen = calloc(n, 1);
    if (!refs || !seen)
        bench_fail("out of memory");
    for (uint64_t i = 0; i < n; i++) {
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = (void *)(uintptr_t)i;
        bench_check(tr_spawn(sys, idler, &o, &refs[i]), "spawn");
    }
    sleep_ms(SETTLE_MS);

    bench_progress("%llu idle actors, measuring %d ms", (unsigned long long)n,
                   MEASURE_MS);
    int64_t cpu0 = bench_cpu_ns(), t0 = tr_now();
    sleep_ms(MEASURE_MS);
    int64_t cpu1 = bench_cpu_ns(), t1 = tr_now();
    double pct = 100.0 * (double)(cpu1 - cpu0) / (double)(t1 - t0);

    tr_msg ping = tr_msg_words(TAG_PING, 0, 0);
    for (uint64_t i = 0; i < n; i++)
        bench_check(tr_send(sys, refs[i], &ping, bench_deadline()), "send ping");
    for (uint64_t i = 0; i < n; i++) {
        tr_msg bye;
        bench_recv(mb, &bye, "confirmations");
        if (bye.tag != TAG_BYE || bye.a >= n || seen[bye.a]++ || bye.from != refs[bye.a])
            bench_fail("bad or duplicate confirmation");
    }

    unsigned workers = tr_system_workers(sys);
    tr_mailbox_free(mb);
    tr_system_free(sys);
    free(refs);
    free(seen);
    bench_report("idle_cpu", pct, "%cpu", workers, n,
                 "\"cpu_ms\":%.1f,\"wall_ms\":%.1f", (double)(cpu1 - cpu0) / 1e6,
                 (double)(t1 - t0) / 1e6);
    return 0;
}
