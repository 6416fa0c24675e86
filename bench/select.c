/*
 * select - one consumer waits on 4 mailboxes at once with tr_select; 4
 * producers each feed their own mailbox (capacity 256: we pass 255, a
 * ring of 256 slots with one kept free).  4 x 1,000,000 messages.
 *
 * The consumer is a loop actor that owns the four mailboxes.  Every
 * message carries its producer's sequence number; the consumer checks
 * that each mailbox delivers 0, 1, 2, ... with nothing missing or
 * repeated, and counts how often each case fired.  The time runs from
 * the start signal until the consumer has everything.
 */
#include "bench_common.h"

#define BOXES 4

enum { TAG_ITEM = 1, TAG_DONE = 2, TAG_GO = 3, TAG_REFS = 4 };

typedef struct shared {
    tr_ref report;
    tr_ref boxes[BOXES];
    uint64_t per;
    uint64_t fired[BOXES];
} shared;

static shared S;

static int produce(tr_actor *self)
{
    uint64_t id = (uint64_t)(uintptr_t)tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    bench_await(TAG_GO);
    for (uint64_t seq = 0; seq < S.per; seq++) {
        tr_msg m = tr_msg_words(TAG_ITEM, id, seq);
        bench_check(tr_send(sys, S.boxes[id], &m, TR_FOREVER), "send");
    }
    return 0;
}

static int consume(tr_actor *self)
{
    tr_system *sys = tr_actor_system(self);
    tr_mailbox *box[BOXES];
    tr_select_case cs[BOXES];
    for (int i = 0; i < BOXES; i++) {
        bench_check(tr_mailbox_new(sys, 255, &box[i]), "mailbox");
        S.boxes[i] = tr_mailbox_ref(box[i]);
        cs[i] = (tr_select_case){.op = TR_SELECT_RECV, .mailbox = box[i]};
    }
    tr_msg ready = tr_msg_words(TAG_REFS, 0, 0);
    bench_check(tr_send(sys, S.report, &ready, TR_FOREVER), "send refs");
    uint64_t next[BOXES] = {0}, total = 0, want = S.per * BOXES;
    while (total < want) {
        int r = tr_select(sys, cs, BOXES, 0, bench_deadline());
        if (r < 0)
            bench_fail("select: %s", tr_strerror(r));
        tr_msg *m = &cs[r].msg;
        if (cs[r].rc || m->tag != TAG_ITEM || m->a != (uint64_t)r || m->b != next[r])
            bench_fail("box %d: got seq %llu, want %llu (lost, duplicated or reordered)",
                       r, (unsigned long long)m->b, (unsigned long long)next[r]);
        next[r]++;
        S.fired[r]++;
        total++;
    }
    tr_msg done = tr_msg_words(TAG_DONE, total, 0);
    bench_check(tr_send(sys, S.report, &done, TR_FOREVER), "send done");
    return 0;
}

int main(void)
{
    bench_set_name("select");
    S.per = bench_count(1000000, 1);
    uint64_t n = S.per * BOXES;
    tr_system *sys = bench_system();
    tr_mailbox *mb = bench_mailbox(sys, 0);
    S.report = tr_mailbox_ref(mb);

    bench_check(tr_spawn_loop(sys, consume, NULL, NULL), "spawn consumer");
    tr_msg refs;
    bench_recv(mb, &refs, "the consumer's mailboxes");
    tr_ref prod[BOXES];
    for (uintptr_t i = 0; i < BOXES; i++) {
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = (void *)i;
        bench_check(tr_spawn_loop(sys, produce, &o, &prod[i]), "spawn producer");
    }

    bench_progress("%d producers x %llu messages", BOXES, (unsigned long long)S.per);
    int64_t t0 = tr_now();
    for (int i = 0; i < BOXES; i++) {
        tr_msg go = tr_msg_words(TAG_GO, 0, 0);
        bench_check(tr_send(sys, prod[i], &go, bench_deadline()), "send go");
    }
    tr_msg done;
    bench_recv(mb, &done, "the consumer's total");
    int64_t t1 = tr_now();
    if (done.tag != TAG_DONE || done.a != n)
        bench_fail("wrong final message");

    unsigned workers = tr_system_workers(sys);
    tr_mailbox_free(mb);
    tr_system_free(sys);
    double ns = (double)(t1 - t0) / (double)n;
    bench_report("select", ns, "ns/msg", workers, n,
                 "\"boxes\":%d,\"fired\":[%llu,%llu,%llu,%llu],\"elapsed_ms\":%.1f",
                 BOXES, (unsigned long long)S.fired[0], (unsigned long long)S.fired[1],
                 (unsigned long long)S.fired[2], (unsigned long long)S.fired[3],
                 (double)(t1 - t0) / 1e6);
    return 0;
}
