/*
 * mailbox.h - bounded MPSC mailboxes (internal).
 *
 * Overview: a mailbox is a ck_ring of tr_msg envelopes, written by any
 * number of senders and read by its one owner, plus a short list of
 * senders waiting for room.  The ring is allocated on the first send, so
 * an actor that has never been sent anything costs no ring memory.
 *
 * Protocol (docs/mailbox.md tells it in full):
 *   - Sender: enqueue, then tell the owner (tr__mailbox_notify): an actor
 *     owner is scheduled by whichever sender flips its `scheduled` flag
 *     from 0 to 1; a thread owner is woken by whichever sender flips its
 *     `signalled` word from 0 to 1.
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

CK_RING_PROTOTYPE(tr_msg, tr_msg)

typedef struct tr__ringbuf {
    struct ck_ring ring;
    struct tr_msg slots[];
} tr__ringbuf;

/* A sender parked until a mailbox has room (lives on the sender's stack). */
typedef struct tr__waiter {
    struct tr__waiter *next, *prev;
    struct tr_actor *actor;    /* NULL: a thread, woken through `word` */
    uint32_t token;            /* the actor's park token for this wait */
    _Atomic uint32_t word;     /* thread waiters: 1 once woken */
    bool listed;               /* on the list (under the mailbox lock) */
    bool woken;                /* taken off the list by a receiver */
} tr__waiter;

struct tr_mailbox {
    _Atomic(tr__ringbuf *) rb;   /* NULL until the first send */
    uint32_t ring_size;          /* power of two; holds ring_size - 1 */
    atomic_bool closed;          /* set once, when the owner goes away */
    tr_ref ref;
    struct tr_system *sys;
    struct tr_actor *owner;      /* NULL: owned by a thread */
    _Atomic uint32_t signalled;  /* thread owners: 0 while asleep */
    atomic_uint nwaiters;        /* senders on the wait list */
    tr__spin wait_lock;          /* guards the wait list */
    tr__waiter *wait_head, *wait_tail;
};

/* Ring size for a requested capacity (0: the system default); 0 if invalid. */
uint32_t tr__mailbox_ring_size(const struct tr_system *sys, uint32_t capacity);

void tr__mailbox_init(struct tr_mailbox *mb, struct tr_system *sys,
                      uint32_t ring_size, struct tr_actor *owner);

/* Enqueue; 0, TR_EFULL or TR_ENOMEM (first send could not get a ring). */
int tr__mailbox_put(struct tr_mailbox *mb, const tr_msg *msg);

/* Tell the owner that a message arrived (after a successful put). */
void tr__mailbox_notify(struct tr_mailbox *mb);

/*
 * Owner side of tr__mailbox_notify, before it stops: clear the owner's
 * flag (an actor's `scheduled`, a thread mailbox's `signalled`), then
 * wake a sender waiting for room, if any; then take a last look at the
 * ring.  A message that the look misses is sure to find the flag at 0,
 * so its sender schedules or wakes the owner.
 */
void tr__mailbox_owner_idle(struct tr_mailbox *mb, _Atomic uint32_t *flag);

/* Dequeue (owner only); false if empty.  Wakes a sender that waits. */
bool tr__mailbox_take(struct tr_mailbox *mb, tr_msg *out);

/* True if the ring holds nothing (owner only, or as a hint). */
bool tr__mailbox_empty(struct tr_mailbox *mb);

/*
 * Owner side, after a run of takes while it stays scheduled: wake a
 * waiting sender if there is one.  tr__mailbox_take only peeks at
 * nwaiters to stay cheap, so this check (or tr__mailbox_owner_idle) is
 * what guarantees no sender is forgotten.
 */
void tr__mailbox_sync_waiters(struct tr_mailbox *mb);

/*
 * Sender side: wait for room until `deadline` (actor: park; thread:
 * block).  Returns 0 (try again), TR_ETIMEDOUT, or TR_ENOACTOR (closed).
 */
int tr__mailbox_wait_room(struct tr_mailbox *mb, tr_deadline deadline);

/* Refuse further waits and wake every waiting sender (owner goes away). */
void tr__mailbox_close(struct tr_mailbox *mb);

/* Release every queued message and free the ring (no senders remain). */
void tr__mailbox_destroy(struct tr_mailbox *mb);

#endif
