/*
 * inject.h - the system's shared run queue: actors made runnable by
 * threads that are not workers, yields, and run queue overflow.
 *
 * Overview: an intrusive multi-producer queue (Dmitry Vyukov's design):
 * a push is one exchange on the producers' end and one store, so a
 * thread feeding many actors never waits for a lock, and a producer
 * preempted mid-push blocks no other producer.  Workers take from the
 * other end one at a time under a try-lock; a worker that finds it taken
 * goes on with other work instead of spinning behind it.
 *
 * Implementation notes: a dummy node (`stub`) keeps the queue non-empty
 * for the consumer.  A producer that has exchanged but not yet linked
 * its node leaves a short gap: the consumer sees the queue as empty
 * until the link lands, while tr__inject_nonempty already says it is
 * not, so no worker parks on it.
 */
#ifndef TR_INJECT_H
#define TR_INJECT_H

#include <stdatomic.h>
#include <stdbool.h>

typedef struct tr__inject_node {
    _Atomic(struct tr__inject_node *) next;
} tr__inject_node;

typedef struct tr__inject {
    _Atomic(tr__inject_node *) head;         /* producers' end */
    char pad1[64 - sizeof(void *)];
    /* Consumer's end: written under `taking`, read by anyone as a hint. */
    _Atomic(tr__inject_node *) tail;
    atomic_bool taking;
    tr__inject_node stub;
} tr__inject;

void tr__inject_init(tr__inject *q);

/* Append a node (any thread).  seq_cst: pairs with a parking worker's
 * increment of the idle count (see park_worker in sched.c). */
void tr__inject_push(tr__inject *q, tr__inject_node *n);

/* True if a node was pushed and not yet taken (a hint, any thread). */
bool tr__inject_nonempty(tr__inject *q);

/* Begin taking; false if another thread is taking right now. */
bool tr__inject_begin(tr__inject *q);

/* Take the oldest node, or NULL (only between begin and end). */
tr__inject_node *tr__inject_take(tr__inject *q);

void tr__inject_end(tr__inject *q);

#endif
