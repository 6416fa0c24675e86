/*
 * spawn - 1,000,000 actors that each send one message to a collector and
 * exit.
 *
 * The main thread spawns loop actors whose body sends its own id and
 * returns.  A collector actor marks each id in a table and reports when
 * it has them all, so a lost or duplicated hello fails the run.  The time
 * runs from the first spawn until the collector has every hello.  Then,
 * outside the timing, every actor's ref is checked to be dead (a send to
 * it fails with TR_ENOACTOR), which proves that each one really exited.
 */
#include <stdlib.h>

#include "bench_common.h"

enum { TAG_HELLO = 1, TAG_DONE = 2, TAG_PROBE = 3 };

/*
 * Room for a burst of hellos, so that the collector's mailbox is not what
 * is measured.  With 1023, senders find it full, each parks on a stack of
 * its own, and past ~32,000 parked (two mappings per guarded stack
 * against vm.max_map_count) tr_send fails with TR_ENOMEM.
 */
#define COLLECTOR_CAPACITY 65535

typedef struct collector {
    tr_ref report;
    unsigned char *seen;
    uint64_t count, want;
} collector;

/* Written before the first spawn, which publishes it to every body. */
static tr_ref collector_ref;

static int hello(tr_actor *self)
{
    uint64_t id = (uint64_t)(uintptr_t)tr_actor_state(self);
    tr_msg m = tr_msg_words(TAG_HELLO, id, 0);
    bench_check(tr_send(tr_actor_system(self), collector_ref, &m, TR_FOREVER),
                "send hello");
    return 0;
}

static int collect(tr_actor *self, tr_msg *m)
{
    collector *c = tr_actor_state(self);
    if (m->tag != TAG_HELLO || m->a >= c->want)
        bench_fail("collector got a stray message");
    if (c->seen[m->a]++)
        bench_fail("actor %llu said hello twice", (unsigned long long)m->a);
    if (++c->count == c->want) {
        tr_msg done = tr_msg_words(TAG_DONE, c->count, 0);
        bench_check(tr_send(tr_actor_system(self), c->report, &done, TR_FOREVER),
                    "send done");
    }
    return 0;
}

int main(void)
{
    bench_set_name("spawn");
    uint64_t n = bench_count(1000000, 1);
    tr_system *sys = bench_system();
    tr_mailbox *mb = bench_mailbox(sys, 0);

    tr_ref *refs = calloc(n, sizeof *refs);
    collector c = {.report = tr_mailbox_ref(mb), .seen = calloc(n, 1), .want = n};
    if (!refs || !c.seen)
        bench_fail("out of memory");
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.state = &c;
    o.mailbox_capacity = COLLECTOR_CAPACITY;
    bench_check(tr_spawn(sys, collect, &o, &collector_ref), "spawn collector");

    bench_progress("%llu actors", (unsigned long long)n);
    int64_t t0 = tr_now();
    for (uint64_t i = 0; i < n; i++) {
        tr_spawn_opts ho = TR_SPAWN_OPTS_INIT;
        ho.state = (void *)(uintptr_t)i;
        bench_check(tr_spawn_loop(sys, hello, &ho, &refs[i]), "spawn");
    }
    int64_t t_spawned = tr_now();
    tr_msg done;
    bench_recv(mb, &done, "the collector's total");
    int64_t t1 = tr_now();
    if (done.tag != TAG_DONE || done.a != n)
        bench_fail("wrong final message");

    uint64_t retries = bench_wait_exited(sys, refs, n, TAG_PROBE);
    unsigned workers = tr_system_workers(sys);
    tr_mailbox_free(mb);
    tr_system_free(sys);
    free(refs);
    free(c.seen);
    bench_report("spawn", (double)(t1 - t0) / (double)n, "ns/actor", workers, n,
                 "\"spawn_loop_ms\":%.1f,\"elapsed_ms\":%.1f,\"exit_probe_retries\":%llu",
                 (double)(t_spawned - t0) / 1e6, (double)(t1 - t0) / 1e6,
                 (unsigned long long)retries);
    return 0;
}
