/*
 * cancel - a supervisor with 100,000 children, each blocked waiting for a
 * message; cancel the supervisor and time until every child has ended,
 * as seen by the caller.
 *
 * The children are handler actors (idle ones hold no stack), so the tree
 * itself is small.  The main thread cannot monitor, so a watcher actor
 * monitors the supervisor and reports its DOWN; a supervisor ends only
 * after all its children have, so that message is the last exit.  Each
 * child counts its end in a cleanup handler, and the run fails unless
 * all of them did.  Two lines: the supervisor stopping its children all
 * at once (`stop_at_once`), and one after the other in reverse order
 * (Erlang/OTP's way), each in a process of its own.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

enum { TAG_READY = 1, TAG_DOWN_SEEN = 2 };

static _Atomic uint64_t armed, ended;
static tr_ref sup_ref, report_ref;

static void count_end(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ended, 1);
}

/* The first message a child gets is its cue to register the handler:
 * handler actors run only when a message comes. */
static int armed_child(tr_actor *self, tr_msg *m)
{
    (void)self;
    (void)m;
    int rc = tr_defer(count_end, NULL);
    atomic_fetch_add(&armed, 1);
    return rc;
}

static int start_armed(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    int rc = tr_spawn(sys, armed_child, NULL, out);
    if (rc == 0) {
        tr_msg m = tr_msg_words(9, 0, 0);
        rc = tr_send(sys, *out, &m, TR_FOREVER);
    }
    return rc;
}

static int watcher(tr_actor *self)
{
    tr_ref mon;
    bench_check(tr_monitor(sup_ref, &mon), "monitor");
    tr_system *sys = tr_actor_system(self);
    tr_msg ready = tr_msg_words(TAG_READY, 0, 0);
    bench_check(tr_send(sys, report_ref, &ready, TR_FOREVER), "ready");
    tr_msg m;
    bench_check(tr_recv(&m, TR_FOREVER), "recv down");
    if (m.tag != TR_TAG_DOWN)
        bench_fail("watcher got a stray message");
    tr_msg seen = tr_msg_words(TAG_DOWN_SEEN, tr_now(), m.b);
    bench_check(tr_send(sys, report_ref, &seen, TR_FOREVER), "report down");
    return 0;
}

int main(int argc, char **argv)
{
    bool sequential = argc > 1 && strcmp(argv[1], "sequential") == 0;
    bench_set_name("cancel");
    uint64_t n = bench_count(100000, 10);
    tr_system *sys = bench_system();
    tr_mailbox *mb = bench_mailbox(sys, 4);
    report_ref = tr_mailbox_ref(mb);

    tr_child_spec *specs = calloc(n, sizeof *specs);
    if (!specs)
        bench_fail("out of memory");
    for (uint64_t i = 0; i < n; i++)
        specs[i] = (tr_child_spec){.name = "child", .start = start_armed,
                                   .restart = TR_PERMANENT, .shutdown_ns = 10000000000ll};
    tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
    o.stop_at_once = !sequential;
    bench_check(tr_supervisor_start(sys, &o, specs, n, &sup_ref), "supervisor");
    bench_check(tr_spawn_loop(sys, watcher, NULL, NULL), "watcher");
    tr_msg m;
    bench_recv(mb, &m, "the watcher");
    /* Wait until every child has run its first message (registered). */
    tr_deadline until = bench_deadline();
    while (atomic_load(&armed) < n) {
        if (tr_now() > until)
            bench_fail("%llu of %llu children ran their first message",
                       (unsigned long long)atomic_load(&armed), (unsigned long long)n);
        tr_sleep(tr_after_ms(1));
    }
    tr_sleep(tr_after_ms(200));

    bench_progress("%llu children, stopped %s", (unsigned long long)n,
                   sequential ? "one after the other" : "all at once");
    int64_t t0 = tr_now();
    bench_check(tr_cancel(sys, sup_ref), "cancel");
    bench_recv(mb, &m, "the supervisor's DOWN");
    int64_t t1 = tr_now();
    if (m.tag != TAG_DOWN_SEEN || (int)(int64_t)m.b != TR_ECANCELED)
        bench_fail("supervisor ended with %lld", (long long)(int64_t)m.b);
    if (atomic_load(&ended) != n)
        bench_fail("%llu of %llu children ran their cleanup",
                   (unsigned long long)atomic_load(&ended), (unsigned long long)n);
    unsigned workers = tr_system_workers(sys);
    tr_mailbox_free(mb);
    tr_system_free(sys);
    free(specs);
    bench_report(sequential ? "cancel_sequential" : "cancel", (double)(t1 - t0) / 1e6, "ms",
                 workers, n, "\"stop\":\"%s\"", sequential ? "one_after_the_other" : "at_once");
    return 0;
}
