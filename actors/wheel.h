/*
 * wheel.h - a hierarchical timing wheel with intrusive nodes.
 *
 * Overview: a wheel holds nodes, each with an absolute deadline in
 * monotonic nanoseconds, and hands them back once they are due, in
 * deadline order.  Arming and cancelling cost O(1) whatever the number of
 * nodes armed; popping costs O(1) amortised (a node is cascaded at most
 * once per level) plus its share of sorting the nodes of its tick, which
 * are few unless many deadlines fall in the same microsecond; and a jump
 * in time costs nothing for the ticks it skips.  The wheel allocates nothing:
 * the caller embeds a tr__wheel_node in its own object and owns it.  A
 * wheel is single-threaded: one owner (a worker) calls everything.
 *
 * Usage:
 *     tr__wheel w;
 *     tr__wheel_init(&w, tr_now());
 *     tr__wheel_arm(&w, &obj->node, tr_after_ms(5));
 *     ...
 *     tr__wheel_node *n;
 *     while ((n = tr__wheel_pop_due(&w, tr_now())))
 *         handle(container_of(n));          // earliest deadline first
 *     sleep_until(tr__wheel_next(&w));      // never later than the earliest
 *
 * Guarantees:
 *   - Never early: tr__wheel_pop_due(w, now) returns only nodes whose
 *     deadline is <= now, and it returns every such node before NULL.
 *   - Order: nodes come out by exact deadline (nanoseconds, not ticks);
 *     equal deadlines come out in the order they were armed.  A deadline
 *     already past when armed comes out at the next pop, in its place in
 *     that order.
 *   - tr__wheel_next is a lower bound of the earliest deadline, never
 *     later than it.  It is exact when the earliest node is on the due
 *     list (its tick has come) or in a slot of at most 16 nodes: then a
 *     sleeper that waits until next() wakes once, on time.  For a more
 *     crowded slot it is the slot's start, the time at which the slot
 *     must be cascaded; that early wake-up is shared by all its nodes,
 *     and a node passes through at most TR__WHEEL_LEVELS slots.  (A
 *     cancel on the due list may leave it earlier than needed, never
 *     later.)  After pop_due(w, now) has returned NULL, next() is always
 *     > now, so waiting on it never spins.
 *
 * Implementation notes: time is cut into ticks of 2^TR__WHEEL_TICK_SHIFT
 * ns (1.024 us).  Level L has 64 slots, each 64^L ticks wide, so level 0
 * spans 65 us, level 1 4.2 ms, level 2 268 ms, level 3 17 s, level 4
 * 18 min ... and nine levels span the whole int64 range: there is no
 * overflow list.  A node goes to the level of the highest 6-bit digit in
 * which its tick differs from the wheel's current tick, in the slot named
 * by that digit, so every node on level L is later than every node on the
 * levels below it, and within a level later slots are later.  Each level
 * keeps a 64-bit mask of its non-empty slots, so finding the earliest
 * slot is a few count-trailing-zeros and a jump in time of any size skips
 * empty slots instead of walking them.  When time reaches the earliest
 * slot of a level above 0, its nodes are re-placed (cascaded) relative to
 * the slot's start, where they fall to lower levels.  Nodes whose tick
 * has come move to a "due" list, which is sorted by (deadline, arming
 * number) before anything is popped from it: that is what makes the order
 * exact rather than per tick.  Slot lists are doubly linked, and each node
 * knows its list, so cancel unlinks in O(1) and keeps the masks exact (a
 * stale mask bit would wake a sleeper for nothing).  docs/timers.md has
 * the whole design, its costs and the alternatives that were rejected.
 */
#ifndef TR_WHEEL_H
#define TR_WHEEL_H

#include <stdbool.h>
#include <stdint.h>

#define TR__WHEEL_TICK_SHIFT 10  /* a tick is 1024 ns */
#define TR__WHEEL_LEVEL_BITS 6
#define TR__WHEEL_SLOTS (1u << TR__WHEEL_LEVEL_BITS)
#define TR__WHEEL_LEVELS 9       /* 10 + 9 * 6 bits >= every int64 deadline */

/* Which list holds a node: none, the due list, or a slot (first slot). */
enum { TR__WHEEL_UNARMED = 0, TR__WHEEL_DUE = 1, TR__WHEEL_SLOT0 = 2 };

/*
 * The part of the caller's object that the wheel links.  Zero it before
 * its first use (tr__wheel_armed then says false); the wheel resets it to
 * unarmed when the node is popped or cancelled.
 */
typedef struct tr__wheel_node {
    struct tr__wheel_node *next, *prev;
    int64_t deadline;
    uint64_t seq;            /* arming number: breaks ties between deadlines */
    uint32_t where;          /* TR__WHEEL_UNARMED, _DUE or _SLOT0 + slot */
} tr__wheel_node;

/* All fields are the owner's; zero-filled memory is an empty wheel at 0. */
typedef struct tr__wheel {
    uint64_t tick;           /* current position; nodes in slots are later */
    uint64_t seq;            /* arming number of the next arm */
    int64_t due_min;         /* <= every deadline on the due list */
    bool due_sorted;         /* the due list is in (deadline, seq) order */
    uint64_t occupied[TR__WHEEL_LEVELS];  /* bit i: slot i is non-empty */
    /* Heads by `where`: [TR__WHEEL_DUE], then the slots ([0] is unused). */
    tr__wheel_node *list[TR__WHEEL_SLOT0 + TR__WHEEL_LEVELS * TR__WHEEL_SLOTS];
} tr__wheel;

/*
 * Make `w` an empty wheel positioned at `now` (any monotonic time; nodes
 * are placed relative to it, so the current time places them best).  The
 * wheel allocates nothing, so there is nothing to destroy: dropping a
 * wheel forgets its nodes, which stay the caller's.
 */
void tr__wheel_init(tr__wheel *w, int64_t now);

/*
 * Arm `n` (unarmed: zeroed, popped or cancelled) to come due at
 * `deadline`, any int64 value; one in the past is due at once.  O(1).
 * The wheel links `n` until it is popped or cancelled: the caller must
 * not move or free it before then.
 */
void tr__wheel_arm(tr__wheel *w, tr__wheel_node *n, int64_t deadline);

/* Unlink `n` if it is armed in `w` (an unarmed node is left alone).  O(1). */
void tr__wheel_cancel(tr__wheel *w, tr__wheel_node *n);

/*
 * The earliest armed node with deadline <= now, unlinked and unarmed, or
 * NULL if there is none.  Call it until NULL to expire everything due;
 * the order is exact (see the overview).  Arming or cancelling between
 * calls is allowed.
 */
tr__wheel_node *tr__wheel_pop_due(tr__wheel *w, int64_t now);

/* A lower bound of the earliest deadline (see the overview), or INT64_MAX
 * (TR_FOREVER) if nothing is armed. */
int64_t tr__wheel_next(const tr__wheel *w);

/* Whether `n` is armed in some wheel. */
static inline bool tr__wheel_armed(const tr__wheel_node *n)
{
    return n->where != TR__WHEEL_UNARMED;
}

#endif
