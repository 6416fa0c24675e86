/*
 * pingpong - two actors bounce one message back and forth.
 *
 * The ball carries a counter that each side increments, so each player
 * knows exactly which value it must see next: a lost, duplicated or
 * reordered ball fails the run.  Player A starts at 0 and stops when it
 * receives 2n, which is n round trips.
 */
#include <stdint.h>

#include "bench_common.h"

enum { TAG_BALL = 1, TAG_DONE = 2 };

typedef struct player {
    tr_ref peer;
    tr_ref report;   /* the main thread's mailbox */
    uint64_t next;   /* the ball value this player must receive next */
    uint64_t last;   /* stop on this value (UINT64_MAX: never) */
} player;

static int play(tr_actor *self, tr_msg *m)
{
    player *p = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);

    if (m->tag != TAG_BALL || m->a != p->next)
        bench_fail("player got tag %llu value %llu, want value %llu",
                   (unsigned long long)m->tag, (unsigned long long)m->a,
                   (unsigned long long)p->next);
    if (m->a > 0 && m->from != p->peer)
        bench_fail("ball %llu came from a stranger", (unsigned long long)m->a);
    if (m->a == p->last) {
        tr_msg done = tr_msg_words(TAG_DONE, m->a, 0);
        bench_check(tr_send(sys, p->report, &done, TR_FOREVER), "send done");
        return TR_STOP;
    }
    p->next += 2;
    tr_msg ball = tr_msg_words(TAG_BALL, m->a + 1, 0);
    bench_check(tr_send(sys, p->peer, &ball, TR_FOREVER), "send ball");
    return 0;
}

int main(void)
{
    bench_set_name("pingpong");
    uint64_t n = bench_count(1000000, 1);
    tr_system *sys = bench_system();
    tr_mailbox *mb = bench_mailbox(sys, 0);

    player a = {.report = tr_mailbox_ref(mb), .next = 0, .last = 2 * n};
    player b = {.report = tr_mailbox_ref(mb), .next = 1, .last = UINT64_MAX};
    tr_spawn_opts oa = TR_SPAWN_OPTS_INIT, ob = TR_SPAWN_OPTS_INIT;
    oa.state = &a;
    ob.state = &b;
    tr_ref ra, rb;
    bench_check(tr_spawn(sys, play, &oa, &ra), "spawn A");
    bench_check(tr_spawn(sys, play, &ob, &rb), "spawn B");
    /* Neither has a message yet, so neither reads its state before the
     * send below publishes these stores. */
    a.peer = rb;
    b.peer = ra;

    bench_progress("%llu round trips", (unsigned long long)n);
    int64_t t0 = tr_now();
    tr_msg ball = tr_msg_words(TAG_BALL, 0, 0);
    bench_check(tr_send(sys, ra, &ball, bench_deadline()), "send first ball");
    tr_msg done;
    bench_recv(mb, &done, "the last ball");
    int64_t t1 = tr_now();
    if (done.tag != TAG_DONE || done.a != 2 * n || done.from != ra)
        bench_fail("wrong final message");

    unsigned workers = tr_system_workers(sys);
    tr_mailbox_free(mb);
    tr_system_free(sys);
    bench_report("pingpong", (double)(t1 - t0) / (double)n, "ns/roundtrip",
                 workers, n, "\"elapsed_ms\":%.1f", (double)(t1 - t0) / 1e6);
    return 0;
}
