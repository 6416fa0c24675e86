/*
 * idle - 1,000,000 handler actors each waiting for a message: what does
 * an idle actor cost in memory?
 *
 * Each actor needs two messages to exit, so that it can be measured in
 * two states:
 *   1. spawned, never sent anything: RSS growth / actors is the value
 *      (bytes/actor);
 *   2. "warm": every actor has handled one WAKE message and waits again;
 *      RSS growth / actors is warm_bytes_per_actor (a mailbox may hold
 *      memory it got on first use);
 * then each gets STOP, sends a confirmation to the main thread and exits.
 * RSS is the current resident set (/proc/self/statm), not the peak.
 * Everything the benchmark itself needs (ref table, flags) is allocated
 * and touched before the baseline, so the growth is the runtime's alone.
 *
 * Checks: every actor sees WAKE then STOP exactly once (a per-actor flag
 * goes 0 -> 1 -> 2), every confirmation arrives once, and afterwards every
 * ref is dead (a send fails with TR_ENOACTOR).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"

enum { TAG_WAKE = 1, TAG_STOP = 2, TAG_BYE = 3, TAG_PROBE = 4 };

/* Confirmations may arrive faster than the main thread takes them. */
#define REPORT_CAPACITY 65535

/* Per-actor progress, indexed by actor id; each actor's state points
 * at its own byte, so the id is the offset from `flags`. */
static unsigned char *flags;
static tr_ref report;
static atomic_ulong woken;

static int idler(tr_actor *self, tr_msg *m)
{
    unsigned char *f = tr_actor_state(self);
    uint64_t id = (uint64_t)(f - flags);

    if (m->tag == TAG_WAKE && *f == 0) {
        *f = 1;
        atomic_fetch_add_explicit(&woken, 1, memory_order_release);
        return 0;
    }
    if (m->tag == TAG_STOP && *f == 1) {
        *f = 2;
        tr_msg bye = tr_msg_words(TAG_BYE, id, 0);
        bench_check(tr_send(tr_actor_system(self), report, &bye, TR_FOREVER),
                    "send bye");
        return TR_STOP;
    }
    bench_fail("actor %llu: tag %llu in state %d", (unsigned long long)id,
               (unsigned long long)m->tag, *f);
}

/* Take one confirmation; `wait` false polls.  Returns 1 if one was taken. */
static int take_bye(tr_mailbox *mb, int wait)
{
    tr_msg m;
    if (wait) {
        bench_recv(mb, &m, "confirmations");
    } else {
        int rc = tr_mailbox_recv(mb, &m, TR_NOW);
        if (rc == TR_ETIMEDOUT)
            return 0;
        bench_check(rc, "poll confirmations");
    }
    if (m.tag != TAG_BYE || flags[m.a] != 2)
        bench_fail("bad or duplicate confirmation");
    flags[m.a] = 3;
    return 1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(void)
{
    bench_set_name("idle");
    uint64_t n = bench_count(1000000, 1);
    tr_ref *refs = malloc(n * sizeof *refs);
    flags = malloc(n);
    if (!refs || !flags)
        bench_fail("out of memory");
    memset(refs, 0, n * sizeof *refs);
    memset(flags, 0, n);
    tr_system *sys = bench_system();
    tr_mailbox *mb = bench_mailbox(sys, REPORT_CAPACITY);
    report = tr_mailbox_ref(mb);
    sleep_ms(50); /* let the workers start and park */

    uint64_t rss0 = bench_rss_bytes();
    int64_t t0 = tr_now();
    for (uint64_t i = 0; i < n; i++) {
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = &flags[i];
        bench_check(tr_spawn(sys, idler, &o, &refs[i]), "spawn");
    }
    int64_t t1 = tr_now();
    uint64_t rss_idle = bench_rss_bytes();
    bench_progress("%llu idle actors: RSS +%llu KiB", (unsigned long long)n,
                   (unsigned long long)((rss_idle - rss0) >> 10));

    tr_msg wake = tr_msg_words(TAG_WAKE, 0, 0);
    for (uint64_t i = 0; i < n; i++)
        bench_check(tr_send(sys, refs[i], &wake, bench_deadline()), "send wake");
    while (atomic_load_explicit(&woken, memory_order_acquire) < n) {
        if (tr_now() > bench_deadline())
            bench_fail("only %lu of %llu actors woke", atomic_load(&woken),
                       (unsigned long long)n);
        sleep_ms(1);
    }
    uint64_t rss_warm = bench_rss_bytes();
    bench_progress("after one message each: RSS +%llu KiB (%.0f ms)",
                   (unsigned long long)((rss_warm - rss0) >> 10),
                   (double)(tr_now() - t1) / 1e6);

    /* Stop them all, taking confirmations as we go so that the report
     * mailbox rarely fills (a full one would park the actors). */
    int64_t t2 = tr_now();
    uint64_t byes = 0;
    tr_msg stop = tr_msg_words(TAG_STOP, 0, 0);
    for (uint64_t i = 0; i < n; i++) {
        bench_check(tr_send(sys, refs[i], &stop, bench_deadline()), "send stop");
        while (take_bye(mb, 0))
            byes++;
    }
    while (byes < n)
        byes += (uint64_t)take_bye(mb, 1);
    int64_t t3 = tr_now();

    /* A confirmation is sent just before the handler returns TR_STOP, so
     * give each actor a moment to finish; a probe that slips in before
     * the mailbox closes is released with it. */
    uint64_t retries = bench_wait_exited(sys, refs, n, TAG_PROBE);

    bench_progress("all stopped and gone (%.0f ms)", (double)(tr_now() - t2) / 1e6);
    unsigned workers = tr_system_workers(sys);
    tr_mailbox_free(mb);
    int64_t t4 = tr_now();
    tr_system_free(sys);
    bench_progress("system freed (%.0f ms)", (double)(tr_now() - t4) / 1e6);
    free(refs);
    free(flags);
    double idle = (double)(int64_t)(rss_idle - rss0) / (double)n;
    double warm = (double)(int64_t)(rss_warm - rss0) / (double)n;
    bench_report("idle", idle, "bytes/actor", workers, n,
                 "\"warm_bytes_per_actor\":%.2f,\"rss_base_kb\":%llu,"
                 "\"rss_idle_kb\":%llu,\"rss_warm_kb\":%llu,\"spawn_ms\":%.1f,"
                 "\"stop_ms\":%.1f,\"exit_probe_retries\":%llu",
                 warm, (unsigned long long)(rss0 >> 10),
                 (unsigned long long)(rss_idle >> 10),
                 (unsigned long long)(rss_warm >> 10), (double)(t1 - t0) / 1e6,
                 (double)(t3 - t2) / 1e6, (unsigned long long)retries);
    return 0;
}
