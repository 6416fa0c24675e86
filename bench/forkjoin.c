/*
 * forkjoin - 64 actors; the main thread (not an actor) sends them
 * 64 x 100,000 messages round-robin with tr_send and a deadline; each
 * actor does a tiny computation per message and keeps a sum.
 *
 * Every message carries its per-actor sequence number.  An actor checks
 * that the numbers come in order, folds each into its sum, and when it
 * has all of its share reports its count and sum; the main thread then
 * checks both against its own computation.  The time runs from the first
 * send until the last report, and the main thread blocks whenever a
 * mailbox (default capacity) is full.
 */
#include <stdlib.h>

#include "bench_common.h"

#define ACTORS 64

enum { TAG_WORK = 1, TAG_DONE = 2 };

typedef struct member {
    tr_ref report;
    uint64_t id;
    uint64_t next, want;
    uint64_t sum;
} __attribute__((aligned(64))) member;

/* The tiny computation: a multiply-xorshift mix of the number and id. */
static uint64_t mix(uint64_t x, uint64_t id)
{
    x = (x + id) * 0x9E3779B97F4A7C15ull;
    return x ^ (x >> 29);
}

static int work(tr_actor *self, tr_msg *m)
{
    member *w = tr_actor_state(self);
    if (m->tag != TAG_WORK || m->a != w->next)
        bench_fail("actor %llu: got seq %llu, want %llu",
                   (unsigned long long)w->id, (unsigned long long)m->a,
                   (unsigned long long)w->next);
    w->sum += mix(m->a, w->id);
    if (++w->next == w->want) {
        tr_msg done = tr_msg_words(TAG_DONE, w->id, w->next);
        bench_check(tr_send(tr_actor_system(self), w->report, &done, TR_FOREVER),
                    "send done");
    }
    return 0;
}

int main(void)
{
    bench_set_name("forkjoin");
    uint64_t per = bench_count(100000, 1);
    uint64_t n = per * ACTORS;
    tr_system *sys = bench_system();
    tr_mailbox *mb = bench_mailbox(sys, 0);

    member *ws = aligned_alloc(64, sizeof(member) * ACTORS);
    tr_ref refs[ACTORS];
    if (!ws)
        bench_fail("out of memory");
    for (uint64_t i = 0; i < ACTORS; i++) {
        ws[i] = (member){.report = tr_mailbox_ref(mb), .id = i, .want = per};
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = &ws[i];
        bench_check(tr_spawn(sys, work, &o, &refs[i]), "spawn");
    }

    bench_progress("%d actors x %llu messages", ACTORS, (unsigned long long)per);
    int64_t t0 = tr_now();
    for (uint64_t k = 0; k < per; k++) {
        for (uint64_t i = 0; i < ACTORS; i++) {
            tr_msg m = tr_msg_words(TAG_WORK, k, 0);
            int rc = tr_send(sys, refs[i], &m, bench_deadline());
            if (rc == TR_ETIMEDOUT)
                bench_fail("send timed out (hang?)");
            bench_check(rc, "send work");
        }
    }
    unsigned char done_seen[ACTORS] = {0};
    for (int i = 0; i < ACTORS; i++) {
        tr_msg done;
        bench_recv(mb, &done, "the actors' reports");
        if (done.tag != TAG_DONE || done.a >= ACTORS || done_seen[done.a]++ ||
            done.b != per || done.from != refs[done.a])
            bench_fail("bad or duplicate report");
    }
    int64_t t1 = tr_now();

    for (uint64_t i = 0; i < ACTORS; i++) {
        uint64_t sum = 0;
        for (uint64_t k = 0; k < per; k++)
            sum += mix(k, i);
        if (ws[i].next != per || ws[i].sum != sum)
            bench_fail("actor %llu: count %llu sum %llx, want %llu %llx",
                       (unsigned long long)i, (unsigned long long)ws[i].next,
                       (unsigned long long)ws[i].sum, (unsigned long long)per,
                       (unsigned long long)sum);
    }

    unsigned workers = tr_system_workers(sys);
    tr_mailbox_free(mb);
    tr_system_free(sys);
    free(ws);
    double secs = (double)(t1 - t0) / 1e9;
    bench_report("forkjoin", (double)n / secs, "msg/s", workers, n,
                 "\"actors\":%d,\"elapsed_ms\":%.1f", ACTORS, secs * 1e3);
    return 0;
}
