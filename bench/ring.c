/*
 * ring - 1,000 actors in a ring pass one token, 10,000,000 hops in all.
 *
 * The token carries the hops still to go.  It starts at node 0 with h
 * hops left, so node i must see it exactly when (h - left) % size == i:
 * every node checks that, and that the token came from its predecessor,
 * so a lost, duplicated or misrouted token fails the run.  The node that
 * receives it with 0 hops left reports to the main thread.
 */
#include <stdlib.h>

#include "bench_common.h"

enum { TAG_TOKEN = 1, TAG_DONE = 2 };

typedef struct node {
    tr_ref next, prev;
    tr_ref report;
    uint64_t index;
    uint64_t size;
    uint64_t hops;   /* total hops of the run */
    uint64_t seen;   /* times this node held the token */
} node;

static int pass(tr_actor *self, tr_msg *m)
{
    node *nd = tr_actor_state(self);
    tr_system *sys = tr_actor_system(self);
    uint64_t left = m->a;

    if (m->tag != TAG_TOKEN || left > nd->hops ||
        (nd->hops - left) % nd->size != nd->index)
        bench_fail("node %llu got the token with %llu hops left",
                   (unsigned long long)nd->index, (unsigned long long)left);
    if (left != nd->hops && m->from != nd->prev)
        bench_fail("node %llu got the token from a stranger",
                   (unsigned long long)nd->index);
    nd->seen++;
    tr_msg out = tr_msg_words(left ? TAG_TOKEN : TAG_DONE, left ? left - 1 : nd->index, 0);
    bench_check(tr_send(sys, left ? nd->next : nd->report, &out, TR_FOREVER),
                "pass the token");
    return 0;
}

int main(void)
{
    bench_set_name("ring");
    uint64_t size = bench_count(1000, 2);
    uint64_t hops = bench_count(10000000, 1);
    tr_system *sys = bench_system();
    tr_mailbox *mb = bench_mailbox(sys, 0);

    node *nodes = calloc(size, sizeof *nodes);
    tr_ref *refs = calloc(size, sizeof *refs);
    if (!nodes || !refs)
        bench_fail("out of memory");
    for (uint64_t i = 0; i < size; i++) {
        nodes[i] = (node){.report = tr_mailbox_ref(mb), .index = i, .size = size,
                          .hops = hops};
        tr_spawn_opts o = TR_SPAWN_OPTS_INIT;
        o.state = &nodes[i];
        bench_check(tr_spawn(sys, pass, &o, &refs[i]), "spawn node");
    }
    /* No node has a message yet; the first send publishes these. */
    for (uint64_t i = 0; i < size; i++) {
        nodes[i].next = refs[(i + 1) % size];
        nodes[i].prev = refs[(i + size - 1) % size];
    }

    bench_progress("%llu actors, %llu hops", (unsigned long long)size,
                   (unsigned long long)hops);
    int64_t t0 = tr_now();
    tr_msg token = tr_msg_words(TAG_TOKEN, hops, 0);
    bench_check(tr_send(sys, refs[0], &token, bench_deadline()), "send token");
    tr_msg done;
    bench_recv(mb, &done, "the token's last hop");
    int64_t t1 = tr_now();

    /* The token visits node i once for each k in 0..hops with k % size == i. */
    uint64_t last = hops % size;
    if (done.tag != TAG_DONE || done.a != last || done.from != refs[last])
        bench_fail("the token ended at the wrong node");
    for (uint64_t i = 0; i < size; i++) {
        uint64_t want = (hops + 1) / size + (i < (hops + 1) % size);
        if (nodes[i].seen != want)
            bench_fail("node %llu held the token %llu times, want %llu",
                       (unsigned long long)i, (unsigned long long)nodes[i].seen,
                       (unsigned long long)want);
    }

    unsigned workers = tr_system_workers(sys);
    tr_mailbox_free(mb);
    tr_system_free(sys);
    free(nodes);
    free(refs);
    bench_report("ring", (double)(t1 - t0) / (double)hops, "ns/hop", workers, hops,
                 "\"actors\":%llu,\"elapsed_ms\":%.1f", (unsigned long long)size,
                 (double)(t1 - t0) / 1e6);
    return 0;
}
