/*
 * restart - microseconds from a child's failure until its replacement
 * runs, under a one_for_one supervisor.
 *
 * The child is a loop actor.  When it starts it notes the time and tells
 * the main thread; told to fail, it notes the time and returns an error.
 * The supervisor sees the exit through its link and starts a new child,
 * whose first step is to note the time again: the gap between the two
 * notes is one detection and replacement.  Repeated many times with a
 * restart intensity high enough for all of them; the run fails unless
 * every failure was followed by exactly one new start.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "bench_common.h"

enum { TAG_STARTED = 1, TAG_FAIL = 2 };

static tr_ref report_ref;
static _Atomic int64_t failed_at;
static _Atomic uint64_t starts;
static int64_t total_gap_ns, worst_gap_ns;

static int child_body(tr_actor *self)
{
    int64_t now = tr_now();
    int64_t f = atomic_exchange(&failed_at, 0);
    if (f) {
        total_gap_ns += now - f; /* one child at a time: no race */
        if (now - f > worst_gap_ns)
            worst_gap_ns = now - f;
    }
    atomic_fetch_add(&starts, 1);
    tr_system *sys = tr_actor_system(self);
    tr_msg up = tr_msg_words(TAG_STARTED, 0, 0);
    bench_check(tr_send(sys, report_ref, &up, TR_FOREVER), "report start");
    tr_msg m;
    for (;;) {
        int rc = tr_recv(&m, TR_FOREVER);
        if (rc)
            return rc;
        if (m.tag == TAG_FAIL) {
            atomic_store(&failed_at, tr_now());
            return -77;
        }
    }
}

static int start_child(tr_system *sys, void *arg, tr_ref *out)
{
    (void)arg;
    return tr_spawn_loop(sys, child_body, NULL, out);
}

int main(void)
{
    bench_set_name("restart");
    uint64_t n = bench_count(20000, 10);
    tr_system *sys = bench_system();
    tr_mailbox *mb = bench_mailbox(sys, 4);
    report_ref = tr_mailbox_ref(mb);
    tr_child_spec spec = {.name = "child", .start = start_child, .restart = TR_PERMANENT,
                          .shutdown_ns = 1000000000ll};
    tr_supervisor_opts o = TR_SUPERVISOR_OPTS_INIT;
    o.intensity = (uint32_t)n + 1;
    o.period_ns = 1000000000000ll;
    tr_ref sup;
    bench_check(tr_supervisor_start(sys, &o, &spec, 1, &sup), "supervisor");
    tr_msg m;
    bench_recv(mb, &m, "the first start");

    bench_progress("%llu failures and replacements", (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        tr_child_info info;
        size_t count;
        bench_check(tr_supervisor_children(sys, sup, &info, 1, &count, bench_deadline()),
                    "children");
        tr_msg fail = tr_msg_words(TAG_FAIL, 0, 0);
        bench_check(tr_send(sys, info.ref, &fail, bench_deadline()), "send fail");
        bench_recv(mb, &m, "the replacement's start");
    }
    if (atomic_load(&starts) != n + 1)
        bench_fail("%llu starts for %llu failures", (unsigned long long)atomic_load(&starts),
                   (unsigned long long)n);
    unsigned workers = tr_system_workers(sys);
    tr_cancel(sys, sup);
    tr_mailbox_free(mb);
    tr_system_free(sys);
    bench_report("restart", (double)total_gap_ns / (double)n / 1e3, "us", workers, n,
                 "\"worst_us\":%.1f", (double)worst_gap_ns / 1e3);
    return 0;
}
