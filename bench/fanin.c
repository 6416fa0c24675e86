/*
 * fanin - 8 producers send to one consumer whose mailbox holds 1,024
 * (we pass capacity 1023: a ring of 1,024 slots, one of them kept free);
 * producers must wait when it is full.  10,000,000 messages in all.
 *
 * Each message carries its producer's id and a sequence number.  A
 * mailbox keeps each sender's messages in order, so the consumer checks
 * that every producer's numbers arrive as 0, 1, 2, ... with none missing
 * and none repeated.  Producers try a non-blocking send first and count
 * how often the mailbox was full (full_waits), which shows that the
 * bounded mailbox did push back.
 */
#include <stdlib.h>

#include "bench_common.h"

#define PRODUCERS 8

enum { TAG_ITEM = 1, TAG_DONE = 2, TAG_GO = 3 };

typedef struct producer {
    tr_ref consumer;
    uint64_t id;
    uint64_t count;
    uint64_t full_waits;
} producer;

typedef struct consumer {
    tr_ref report;
    tr_ref from[PRODUCERS];
    uint64_t next[PRODUCERS];  /* the sequence number due from each */
    uint64_t total, want;
} consumer;

static int produce(tr_actor *self)
{
    producer *p = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);

    /* Wait for the start signal: by then the consumer knows our ref. */
    bench_await(TAG_GO);
    for (uint64_t seq = 0; seq < p->count; seq++) {
        tr_msg m = tr_msg_words(TAG_ITEM, p->id, seq);
        p->full_waits += bench_send_counting_full(sys, p->consumer, &m);
    }
    return 0;
}

static int consume(tr_actor *self, tr_msg *m)
{
    consumer *c = tr_actor_state(self);
    uint64_t id = m->a;

    if (m->tag != TAG_ITEM || id >= PRODUCERS)
        bench_fail("consumer got a stray message");
    if (m->from != c->from[id])
        bench_fail("message from producer %llu has the wrong sender",
                   (unsigned long long)id);
    if (m->b != c->next[id])
        bench_fail("producer %llu: got seq %llu, want %llu (lost, duplicated "
                   "or reordered)", (unsigned long long)id,
                   (unsigned long long)m->b, (unsigned long long)c->next[id]);
    c->next[id]++;
    if (++c->total == c->want) {
        tr_msg done = tr_msg_words(TAG_DONE, c->total, 0);
        bench_check(tr_send(tr_actor_system(self), c->report, &done, TR_FOREVER),
                    "send done");
    }
    return 0;
}

int main(void)
{
    bench_set_name("fanin");
    uint64_t per = bench_count(10000000 / PRODUCERS, 1);
    uint64_t n = per * PRODUCERS;
    tr_system *sys = bench_system();
    tr_mailbox *mb = bench_mailbox(sys, 0);

    consumer c = {.report = tr_mailbox_ref(mb), .want = n};
    producer p[PRODUCERS];
    tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
    o.state = &c;
    o.mailbox_capacity = 1023;
    tr_ref cref;
    bench_check(tr_spawn(sys, consume, &o, &cref), "spawn consumer");

    /* Producers start only on TAG_GO, so that c.from[] is complete
     * before the consumer can see a message (the sends publish it). */
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (producer){.consumer = cref, .id = (uint64_t)i, .count = per};
        tr_spawn_opts po = TR_SPAWN_OPTS_INIT;
        po.state = &p[i];
        bench_check(tr_spawn_loop(sys, produce, &po, &c.from[i]), "spawn producer");
    }

    bench_progress("%d producers x %llu messages", PRODUCERS, (unsigned long long)per);
    int64_t t0 = tr_now();
    for (int i = 0; i < PRODUCERS; i++) {
        tr_msg go = tr_msg_words(TAG_GO, 0, 0);
        bench_check(tr_send(sys, c.from[i], &go, bench_deadline()), "send go");
    }
    tr_msg done;
    bench_recv(mb, &done, "the consumer's total");
    int64_t t1 = tr_now();

    if (done.tag != TAG_DONE || done.a != n || done.from != cref)
        bench_fail("wrong final message");
    uint64_t waits = 0;
    for (int i = 0; i < PRODUCERS; i++) {
        if (c.next[i] != per)
            bench_fail("producer %d: %llu of %llu messages arrived", i,
                       (unsigned long long)c.next[i], (unsigned long long)per);
        waits += p[i].full_waits;
    }

    unsigned workers = tr_system_workers(sys);
    tr_mailbox_free(mb);
    tr_system_free(sys);
    double secs = (double)(t1 - t0) / 1e9;
    bench_report("fanin", (double)n / secs, "msg/s", workers, n,
                 "\"producers\":%d,\"full_waits\":%llu,\"elapsed_ms\":%.1f",
                 PRODUCERS, (unsigned long long)waits, secs * 1e3);
    return 0;
}
