/*
 * stream_delay - what coalescing costs: the time from a send to its
 * handling while the main thread streams to 64 actors, and the round
 * trip of a request from the main thread when it waits for each answer.
 *
 * Phase one: the main thread asks 16 actors in turn, 20,000 times, and
 * waits for each answer (request and response, which starts no gaps).
 * Phase two: it sends 64 actors 20,000 messages each, round-robin, as
 * forkjoin does, each stamped with the time of its send; each actor
 * checks the order, adds up the delays to its handling, keeps the worst,
 * and reports at the end.  The value is the mean delay of phase two;
 * run it with COALESCE_NS=0 to see the same without gaps.
 */
#include <stdlib.h>

#include "bench_common.h"

#define STREAM_ACTORS 64
#define ASKED_ACTORS 16

enum { TAG_ASK = 1, TAG_ANSWER = 2, TAG_DATA = 3, TAG_LAST = 4, TAG_DONE = 5 };

typedef struct member {
    uint64_t next;
    int64_t delay_sum, delay_max;
} __attribute__((aligned(64))) member;

static int answer(tr_actor *self, tr_msg *m)
{
    tr_msg a = tr_msg_words(TAG_ANSWER, m->a, 0);
    bench_check(tr_send(tr_actor_system(self), m->from, &a, TR_FOREVER), "answer");
    return 0;
}

static int take(tr_actor *self, tr_msg *m)
{
    member *s = tr_actor_state(self);
    int64_t delay = tr_now() - (int64_t)m->b;
    if (m->a != s->next++)
        bench_fail("got seq %llu, want %llu", (unsigned long long)m->a,
                   (unsigned long long)s->next - 1);
    s->delay_sum += delay;
    if (delay > s->delay_max)
        s->delay_max = delay;
    if (m->tag == TAG_LAST) {
        tr_msg done = tr_msg_words(TAG_DONE, s->next, 0);
        bench_check(tr_send(tr_actor_system(self), m->from, &done, TR_FOREVER), "done");
    }
    return 0;
}

int main(void)
{
    bench_set_name("stream_delay");
    uint64_t asks = bench_count(20000, 16), per = bench_count(20000, 2);
    tr_system *sys = bench_system();
    tr_mailbox *mb = bench_mailbox(sys, STREAM_ACTORS);

    tr_ref asked[ASKED_ACTORS];
    for (int i = 0; i < ASKED_ACTORS; i++)
        bench_check(tr_spawn(sys, answer, NULL, &asked[i]), "spawn");
    int64_t t0 = tr_now();
    for (uint64_t k = 0; k < asks; k++) {
        tr_msg q = tr_msg_words(TAG_ASK, k, 0), r;
        bench_check(tr_send(sys, asked[k % ASKED_ACTORS], &q, bench_deadline()), "ask");
        bench_recv(mb, &r, "an answer");
        if (r.tag != TAG_ANSWER || r.a != k)
            bench_fail("wrong answer");
    }
    double rtt_us = (double)(tr_now() - t0) / 1e3 / (double)asks;

    member *ms = aligned_alloc(64, sizeof(member) * STREAM_ACTORS);
    if (!ms)
        bench_fail("out of memory");
    tr_ref refs[STREAM_ACTORS];
    for (int i = 0; i < STREAM_ACTORS; i++) {
        ms[i] = (member){0};
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = &ms[i];
        bench_check(tr_spawn(sys, take, &o, &refs[i]), "spawn");
    }
    bench_progress("%d asks, then %d actors x %llu messages", ASKED_ACTORS,
                   STREAM_ACTORS, (unsigned long long)per);
    for (uint64_t k = 0; k < per; k++)
        for (int i = 0; i < STREAM_ACTORS; i++) {
            tr_msg m = tr_msg_words(k + 1 == per ? TAG_LAST : TAG_DATA, k, (uint64_t)tr_now());
            bench_check(tr_send(sys, refs[i], &m, bench_deadline()), "send");
        }
    for (int i = 0; i < STREAM_ACTORS; i++) {
        tr_msg done;
        bench_recv(mb, &done, "the actors' reports");
        if (done.tag != TAG_DONE || done.a != per)
            bench_fail("bad report");
    }
    int64_t sum = 0, worst = 0;
    for (int i = 0; i < STREAM_ACTORS; i++) {
        sum += ms[i].delay_sum;
        if (ms[i].delay_max > worst)
            worst = ms[i].delay_max;
    }
    uint64_t n = per * STREAM_ACTORS;
    unsigned workers = tr_system_workers(sys);
    tr_mailbox_free(mb);
    tr_system_free(sys);
    free(ms);
    bench_report("stream_delay", (double)sum / 1e3 / (double)n, "us", workers, n,
                 "\"worst_us\":%.1f,\"ask_roundtrip_us\":%.2f,\"asks\":%llu",
                 (double)worst / 1e3, rtt_us, (unsigned long long)asks);
    return 0;
}
