/*
 * mailbox.h - bounded MPSC mailboxes (internal).
 *
 * Overview: a mailbox is a ck_ring of tr_msg envelopes, written by any
 * number of senders and read by its one owner, plus a short list of
 * senders waiting for room.  The ring is allocated on the first send, so
 * an actor that has never been sent anything costs no ring memory.
 *
 * Protocol (docs/mailbox.md tells it in full):
 *   - Sender: enqueue, then tell the owner (tr__mailbox_notify) through
 *     its flag: an actor owner is scheduled by whichever sender flips its
 *     `scheduled` flag from 0 to 1; a thread owner is woken by whichever
 *     sender flips its word from 0 to 1.  All the mailboxes of one owner
 *     share its flag, so one wait covers them all (select).
 *   - Full ring: the sender registers a waiter (nwaiters++ and a seq_cst
 *     fence), looks at the ring once more, and only then parks.  The
 *     receiver, after it frees room, fences and looks at nwaiters and
 *     wakes one.  The two fences are ordered, so one side sees the
 *     other: no wake-up is lost.
 */
#ifndef TR_MAILBOX_H
#define TR_MAILBOX_H

#include <ck_ring.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../actors/spin.h"
#include "troupe/mailbox.h"
#include "troupe/msg.h"
#include "troupe/time.h"

struct tr_actor;
struct tr_system;
typedef struct tr__owned_mailbox tr__owned_mailbox;

CK_RING_PROTOTYPE(tr_msg, tr_msg)

typedef struct tr__ringbuf {
    struct ck_ring ring;
    struct tr_msg slots[];
} tr__ringbuf;

/*
 * A sender waiting until a mailbox has room (lives on the waiter's stack).
 * Three kinds, told apart by how they are woken:
 *   - an actor parked in a send: its park is claimed by `token`;
 *   - a thread blocked in a send: `word` goes to 1 and is futex-woken;
 *   - a select (actor or thread) with a send case: its owner flag
 *     (`flag`) is raised, as a message arrival would raise it.
 */
typedef struct tr__waiter {
    struct tr__waiter *next, *prev;
    struct tr_actor *actor;    /* the waiting actor; NULL: a thread */
    _Atomic uint32_t *flag;    /* select waiters: the flag to raise */
    uint32_t token;            /* actor send waiters: the park token */
    _Atomic uint32_t word;     /* thread send waiters: 1 once woken */
    _Atomic tr_ref *waiting;   /* send waiters: the owner word they
                                * published (deadlock.h), or NULL */
    bool listed;               /* on the list (under the mailbox lock) */
    bool woken;                /* taken off the list by a receiver */
} tr__waiter;

/* Ordered without holes: an actor holds one, and an actor is five cache
 * lines exactly (bench/idle). */
struct tr_mailbox {
    _Atomic(tr__ringbuf *) rb;   /* NULL until the first send */
    uint32_t ring_size;          /* power of two; holds ring_size - 1 */
    int closed_error;            /* what senders get once it is closed */
    tr_ref ref;
    struct tr_system *sys;
    struct tr_actor *owner;      /* NULL: owned by a thread */
    /* The owner's "I will look at my mailboxes again" flag, 0 while it
     * sleeps: the owning actor's `scheduled`, or the owning thread's
     * word, shared by all the mailboxes of that owner. */
    _Atomic uint32_t *flag;
    atomic_uint nwaiters;        /* senders on the wait list */
    atomic_bool closed;          /* no more sends; set once */
    tr__spin wait_lock;          /* guards the wait list */
    tr__waiter *wait_head, *wait_tail;
};

/* Ring size for a requested capacity (0: the system default); 0 if invalid. */
uint32_t tr__mailbox_ring_size(const struct tr_system *sys, uint32_t capacity);

/* The bytes a ring of ring_size slots takes, a multiple of the cache line. */
size_t tr__mailbox_ring_bytes(uint32_t ring_size);

/*
 * Set up an empty mailbox of `owner` (an actor, or NULL for a thread)
 * whose flag is `flag`; `closed_error` is what sends get once it closes.
 */
void tr__mailbox_init(struct tr_mailbox *mb, struct tr_system *sys,
                      uint32_t ring_size, struct tr_actor *owner,
                      _Atomic uint32_t *flag, int closed_error);

/* Enqueue; 0, TR_EFULL or TR_ENOMEM (first send could not get a ring). */
int tr__mailbox_put(struct tr_mailbox *mb, const tr_msg *msg);

/* Tell the owner that a message arrived (after a successful put). */
void tr__mailbox_notify(struct tr_mailbox *mb);

/*
 * Owner side of tr__mailbox_notify, before it stops: clear the owner's
 * flag (mb->flag), then
 * wake a sender waiting for room, if any; then take a last look at the
 * ring.  A message that the look misses is sure to find the flag at 0,
 * so its sender schedules or wakes the owner.
 */
void tr__mailbox_owner_idle(struct tr_mailbox *mb);

/*
 * A waiting owner's check, after a seq_cst fence of its own (the one in
 * tr__mailbox_owner_idle or after lowering its flag): wake one sender
 * waiting for room in `mb`, if any and if there is room.
 */
void tr__mailbox_check_waiters(struct tr_mailbox *mb);

/* True if the mailbox is closed and nothing is left to take. */
bool tr__mailbox_drained(struct tr_mailbox *mb);

/* True if a send would find room (a hint: other senders race). */
bool tr__mailbox_has_room(struct tr_mailbox *mb);

/*
 * The wait list, for select: add a waiter (false if the mailbox is
 * closed) and take it off again.  A select waiter that a receiver woke
 * but whose send case did not fire passes the wake on when removed, so
 * that no plain sender is left waiting beside free room.
 */
bool tr__mailbox_add_waiter(struct tr_mailbox *mb, tr__waiter *w);
void tr__mailbox_remove_waiter(struct tr_mailbox *mb, tr__waiter *w, bool used);

/* Dequeue (owner only); false if empty.  Wakes a sender that waits. */
bool tr__mailbox_take(struct tr_mailbox *mb, tr_msg *out);

/* True if the ring holds nothing (owner only, or as a hint). */
bool tr__mailbox_empty(struct tr_mailbox *mb);

/* How many messages the ring holds: exact for the owner; from another
 * thread a hint, since it reads the two ends one after the other and the
 * difference wraps under the ring's mask if the owner takes in between
 * (a full ring can read as empty).  Cheap: the owner's idle path. */
uint32_t tr__mailbox_queued(struct tr_mailbox *mb);

/* The same, from any thread, as it was at one instant: the consumer's
 * end is read again after the producers' and the read tried again if it
 * moved.  A reader that keeps losing to the owner gets an upper bound,
 * at most the capacity (tr_mailbox_depth). */
uint32_t tr__mailbox_count(struct tr_mailbox *mb);

/*
 * Owner side, after a run of takes while it stays scheduled: wake a
 * waiting sender if there is one.  tr__mailbox_take only peeks at
 * nwaiters to stay cheap, so this check (or tr__mailbox_owner_idle) is
 * what guarantees no sender is forgotten.
 */
void tr__mailbox_sync_waiters(struct tr_mailbox *mb);

/*
 * Sender side: wait for room until `deadline` (actor: park; thread:
 * block).  Returns 0 (try again), TR_ETIMEDOUT, TR_ECANCELED, TR_EDEADLK
 * (an actor whose wait would close a cycle of full mailboxes), or the
 * mailbox's closed_error.
 */
int tr__mailbox_wait_room(struct tr_mailbox *mb, tr_deadline deadline);

/* Refuse further sends and wake every waiting sender. */
void tr__mailbox_close(struct tr_mailbox *mb);

/* Release every queued message and free the ring (no senders remain). */
void tr__mailbox_destroy(struct tr_mailbox *mb);

#endif
