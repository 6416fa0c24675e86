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

/* Each end on a cache line of its own, and nothing else on them. */
typedef struct tr__inject {
    _Atomic(tr__inject_node *) head __attribute__((aligned(64))); /* producers' end */
    /* Consumer's end: written under `taking`, read by anyone as a hint. */
    _Atomic(tr__inject_node *) tail __attribute__((aligned(64)));
    atomic_bool taking;
    tr__inject_node stub;
} __attribute__((aligned(64))) tr__inject;

void tr__inject_init(tr__inject *q);

/* Append a node (any thread).  seq_cst: pairs with a parking worker's
 * increment of the idle count (see park_worker in sched.c). */
void tr__inject_push(tr__inject *q, tr__inject_node *n);

/* True if a node was pushed and not yet taken (a hint, any thread). */
bool tr__inject_nonempty(tr__inject *q);

/* The takers' cheaper hint, for polling: true if a node is linked in at
 * their end.  It reads only their cache line, not the producers' (which
 * each poll took away from a thread pushing a message a time); a node
 * being pushed right now may not show yet, so it is not for deciding
 * to sleep. */
bool tr__inject_ready(tr__inject *q);

/* The node pushed last (the stub if the queue looks empty); for a taker
 * marking how far the queue went when it looked. */
tr__inject_node *tr__inject_newest(tr__inject *q);

/* Begin taking; false if another thread is taking right now. */
bool tr__inject_begin(tr__inject *q);

/* Take the oldest node, or NULL (only between begin and end). */
tr__inject_node *tr__inject_take(tr__inject *q);

void tr__inject_end(tr__inject *q);

#endif
