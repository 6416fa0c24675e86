/*
 * coalesce.h - pacing the work that threads outside the system hand in.
 *
 * Overview: a thread that is not a worker (the application's) and feeds
 * many actors a message at a time pays a few cache misses per message if
 * the workers run each actor as soon as its message lands: the ring's
 * indexes, its slots and the actor's flag then cross between cores at
 * every message, and the feeder runs at a quarter of its own speed.  So
 * when such a stream shows, workers take the actors made runnable from
 * outside in drains with a gap between them.  An actor that waits through
 * a gap gathers several messages, written into lines that nobody takes
 * away meanwhile, and one turn handles them all.
 *
 * A drain is what was in the queue when it began (the producers' end at
 * its first take); actors pushed during it wait for the next one, which
 * is how a drain ends while the feeder keeps pushing.  After each drain
 * the policy below sets the next gap from what the drain found:
 *   - no gap yet: with COALESCE_MIN_ACTORS actors or more, holding a
 *     message each on average, try one of COALESCE_FIRST_NS; otherwise
 *     none, so that sporadic traffic from outside, and spawns, start no
 *     gap (while a stream runs, though, they wait through its gaps too);
 *   - a full mailbox among them: halve the gap (the feeder waited on it);
 *   - thin drains, few actors or under 1.5 messages each, COALESCE_STRIKES
 *     times in a row: the gap gains nothing (request and response: each
 *     actor has one message however long it waits), so stop, and try
 *     again only after COALESCE_RETRY_NS;
 *   - otherwise grow the gap while the mailboxes are under half full
 *     (double it under a quarter, add a quarter under a half), up to
 *     tr_config.coalesce_ns, and halve it past three quarters.
 *
 * The bookkeeping is for the one worker that takes at a time (the outside
 * queue's try-lock); sched.c does the taking and the sleeping through a
 * gap.  docs/scheduler.md, "Work from outside", has the figures.
 */
#ifndef TR_COALESCE_H
#define TR_COALESCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define COALESCE_MIN_ACTORS 8
#define COALESCE_FIRST_NS 20000
#define COALESCE_RETRY_NS 10000000
#define COALESCE_STRIKES 8

typedef struct tr__coalesce {
    /* Read at each look for outside work, written about once a drain. */
    _Atomic int64_t gap_until __attribute__((aligned(64))); /* 0: none */
    /* The taker's, under the outside queue's try-lock. */
    int64_t max_ns __attribute__((aligned(64))); /* tr_config.coalesce_ns; 0: never */
    int64_t gap_ns;             /* the gap after this drain; 0: none */
    int64_t retry_after;        /* no new try before this */
    uint32_t strikes;           /* thin drains in a row under a gap */
    const void *last;           /* the drain's last node; NULL: no drain */
    uint32_t actors;            /* taken in this drain */
    uint64_t queued, room;      /* their messages, and their capacity */
    bool full;                  /* one of them had a full mailbox */
} __attribute__((aligned(64))) tr__coalesce;

void tr__coalesce_init(tr__coalesce *c, int64_t max_ns);

/* The end of the current gap, or 0 if there is none: one plain load, so
 * that looking costs no clock read while nothing is coalesced. */
static inline int64_t tr__coalesce_gap_until(tr__coalesce *c)
{
    return atomic_load_explicit(&c->gap_until, memory_order_relaxed);
}

/* A drain begins with its first take; `last` is the producers' end then. */
bool tr__coalesce_draining(const tr__coalesce *c);
void tr__coalesce_begin(tr__coalesce *c, const void *last);

/* Count one actor taken, `node` being its queue link, with `queued`
 * messages waiting in a mailbox that holds `room`; true if it was the
 * drain's last. */
bool tr__coalesce_took(tr__coalesce *c, const void *node, uint32_t queued,
                       uint32_t room);

/* The drain is over (its last node, or the queue was empty): set the
 * next gap from what it found. */
void tr__coalesce_end(tr__coalesce *c, int64_t now);

#endif
