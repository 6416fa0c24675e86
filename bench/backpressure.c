/*
 * backpressure - one producer sends 2,000,000 messages as fast as it can
 * to a consumer that spends 1 us on each; the consumer's mailbox holds
 * 1,000 (capacity 1023: the next power of two minus one).
 *
 * The consumer spins on tr_now() until 1 us has passed since it took the
 * message, so no runtime can exceed 1,000,000 msg/s.  What matters is
 * that the producer is held back by the bounded mailbox instead of piling
 * messages up: peak RSS must not grow with the message count.  Compare
 * peak_rss_kb (and peak_rss_growth_kb, the growth over the peak before
 * the workload) at BENCH_SCALE=0.1 and 1.
 *
 * consumer_limit is the same work in a bare loop on this machine (reading
 * the clock costs something, so it is under 1,000,000), and of_limit the
 * share of it that the runtime reached.
 *
 * Checks: the consumer sees the producer's sequence numbers in order with
 * no gap or repeat, and all of them.
 */
#include "bench_common.h"

enum { TAG_ITEM = 1, TAG_DONE = 2, TAG_GO = 3 };

#define WORK_NS 1000

typedef struct producer {
    tr_ref consumer;
    uint64_t count;
    uint64_t full_waits;
} producer;

typedef struct consumer {
    tr_ref report;
    tr_ref producer;   /* set before the producer's first message */
    uint64_t next, want;
} consumer;

static int produce(tr_actor *self)
{
    producer *p = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);

    bench_await(TAG_GO);
    for (uint64_t seq = 0; seq < p->count; seq++) {
        tr_msg m = tr_msg_words(TAG_ITEM, seq, 0);
        p->full_waits += bench_send_counting_full(sys, p->consumer, &m);
    }
    return 0;
}

/* The consumer's work: spin until WORK_NS have passed since `took`. */
static void work_since(int64_t took)
{
    while (tr_now() - took < WORK_NS)
        ;
}

/*
 * The consumer's own limit on this machine: the same work in a plain
 * loop, with no runtime around it.  Reading the clock has a cost, so it
 * sits a little under 1,000,000 msg/s; `of_limit` compares against it.
 */
static double consumer_limit(void)
{
    enum { ROUNDS = 200000 };
    int64_t t0 = tr_now();
    for (int i = 0; i < ROUNDS; i++)
        work_since(tr_now());
    return ROUNDS / ((double)(tr_now() - t0) / 1e9);
}

static int consume(tr_actor *self, tr_msg *m)
{
    int64_t took = tr_now();
    consumer *c = tr_actor_state(self);

    if (m->tag != TAG_ITEM || m->from != c->producer)
        bench_fail("consumer got a stray message");
    if (m->a != c->next)
        bench_fail("got seq %llu, want %llu (lost, duplicated or reordered)",
                   (unsigned long long)m->a, (unsigned long long)c->next);
    c->next++;
    work_since(took);
    if (c->next == c->want) {
        tr_msg done = tr_msg_words(TAG_DONE, c->next, 0);
        bench_check(tr_send(tr_actor_system(self), c->report, &done, TR_FOREVER),
                    "send done");
    }
    return 0;
}

int main(void)
{
    bench_set_name("backpressure");
    uint64_t n = bench_count(2000000, 1);
    double limit = consumer_limit();
    tr_system *sys = bench_system();
    tr_mailbox *mb = bench_mailbox(sys, 0);

    consumer c = {.report = tr_mailbox_ref(mb), .want = n};
    tr_spawn_opts co = TR_SPAWN_OPTS_INIT;
    co.state = &c;
    co.mailbox_capacity = 1023;
    tr_ref cref;
    bench_check(tr_spawn(sys, consume, &co, &cref), "spawn consumer");
    producer p = {.consumer = cref, .count = n};
    tr_spawn_opts po = TR_SPAWN_OPTS_INIT;
    po.state = &p;
    bench_check(tr_spawn_loop(sys, produce, &po, &c.producer), "spawn producer");
    long rss_before = bench_peak_rss_kb();

    bench_progress("%llu messages, %d ns each", (unsigned long long)n, WORK_NS);
    int64_t t0 = tr_now();
    tr_msg go = tr_msg_words(TAG_GO, 0, 0);
    bench_check(tr_send(sys, c.producer, &go, bench_deadline()), "send go");
    tr_msg done;
    bench_recv(mb, &done, "the consumer's total");
    int64_t t1 = tr_now();
    if (done.tag != TAG_DONE || done.a != n || done.from != cref || c.next != n)
        bench_fail("wrong final message");

    long rss_after = bench_peak_rss_kb();
    unsigned workers = tr_system_workers(sys);
    tr_mailbox_free(mb);
    tr_system_free(sys);
    double secs = (double)(t1 - t0) / 1e9;
    double rate = (double)n / secs;
    bench_report("backpressure", rate, "msg/s", workers, n,
                 "\"peak_rss_before_kb\":%ld,\"peak_rss_growth_kb\":%ld,"
                 "\"full_waits\":%llu,\"elapsed_ms\":%.1f,"
                 "\"consumer_limit\":%.0f,\"of_limit\":%.3f",
                 rss_before, rss_after - rss_before,
                 (unsigned long long)p.full_waits, secs * 1e3, limit, rate / limit);
    return 0;
}
