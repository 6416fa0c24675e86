/*
 * signal.h - signals: exit and DOWN notices, on a queue of their own.
 *
 * Overview: a signal is a small heap node for the receiving actor.
 * Senders push it onto the actor's inbox, a lock-free stack (newest
 * first); the owner takes the whole stack at once and keeps it, oldest
 * first, on a list of its own.  So senders never wait for each other or
 * for the owner (a supervisor's 100,000 children end at once), and what
 * one actor sends another arrives in the order sent.  Signals are rare
 * (one per link or monitor when an actor ends), so an allocation each is
 * cheap enough, and an unbounded list is what keeps them apart from the
 * bounded mailbox: a full mailbox never holds one back.  After pushing,
 * the sender raises the receiver's flag exactly as a message does, so a
 * receiver parked in a receive or idle wakes up; a link's exit that
 * must end the receiver also cancels it, which ends any other wait.
 *
 * The actor's sig_lock guards its links and monitors and its `exited`
 * mark: an actor that has ended accepts no new link or monitor (the
 * caller gets the notice at once instead).  At its end its link set is
 * taken, under the lock, exactly once; its monitors stay on their list
 * until each is taken off with its DOWN pushed, one at a time under the
 * lock, so that tr_demonitor never misses both.  The inbox is closed for
 * good with a marker that makes later pushes fail.
 */
#ifndef TR_SIGNAL_H
#define TR_SIGNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "refmap.h"
#include "troupe/msg.h"

struct tr_actor;
struct tr_system;

typedef struct tr__signal {
    struct tr__signal *next;
    tr_msg msg;                  /* as it will be delivered */
} tr__signal;

/* A watcher of this actor, told by a DOWN when it ends. */
typedef struct tr__monitor {
    tr_ref watcher, id;
} tr__monitor;

/* An actor's signal state; zero-filled is empty. */
typedef struct tr__signals {
    /* pushed by senders, newest first; TR__SIGNALS_CLOSED once ended */
    _Atomic(tr__signal *) inbox;
    tr__signal *first, *last;    /* taken by the owner, oldest first */
    tr__refmap links;            /* linked actors -> the links' tags */
    tr__monitor *monitors;       /* who watches us */
    uint32_t nmonitors, monitors_cap;
    bool exited;                 /* ended: lists taken, no more added */
} tr__signals;

/* Take the oldest deliverable signal as a message; false if none.  Exits
 * that do not concern a non-trapping actor are dropped on the way. */
bool tr__signal_take(struct tr_actor *a, tr_msg *out);

#define TR__SIGNALS_CLOSED ((tr__signal *)1)

/* True if a signal is queued: for the owner, which asks after lowering
 * its flag (a sender raises it after pushing), or as a hint for a worker
 * that has just let the actor go idle. */
static inline bool tr__signals_pending(tr__signals *sig)
{
    tr__signal *pushed = atomic_load_explicit(&sig->inbox, memory_order_relaxed);
    return __atomic_load_n(&sig->first, __ATOMIC_RELAXED) ||
           (pushed && pushed != TR__SIGNALS_CLOSED);
}
#define tr__signal_pending(a) tr__signals_pending(&(a)->sig)

/* The actor has ended with `reason`: tell its links and monitors, free
 * what is queued.  Runs once, from tr__actor_finish. */
void tr__signal_exit(struct tr_actor *a, int reason);

/* A link to an actor already gone, made by a trapping `watcher`: its
 * EXIT (reason TR_ENOACTOR); false if there was no memory to queue it. */
bool tr__signal_exit_now(struct tr_system *sys, tr_ref watcher, tr_ref target);

/* A monitor of an actor already gone: its DOWN (reason TR_ENOACTOR). */
void tr__signal_down_now(struct tr_system *sys, tr_ref watcher, tr_ref target, tr_ref id);

/* Drop a queued DOWN of monitor `id` (demonitor); true if there was one. */
bool tr__signal_unqueue_down(struct tr_actor *a, tr_ref id);

/*
 * Links with a tag: the calling actor's side of the link to `other`
 * carries `tag`, and other's exit, when it reaches us as a TR_TAG_EXIT
 * message, has it in msg.b (0 for tr_link's links).  A supervisor tags
 * each child's link with the child's place, so it needs no map of its
 * own from refs to children.  tr__link_tagged is tr_link with a tag (an
 * existing link is retagged on our side; other's side keeps its tag, so
 * a child that links to its supervisor stays its child); tr__link_tag
 * reads it (false: not linked); tr__link_retag changes it (false: not
 * linked, nothing changed).
 */
int tr__link_tagged(tr_ref other, uint32_t tag);
bool tr__link_tag(tr_ref other, uint32_t *tag);
bool tr__link_retag(tr_ref other, uint32_t tag);

/* Take `ref` off a's links (under a's lock), its tag into *tag unless
 * tag is NULL; false if it was not linked. */
bool tr__link_drop(struct tr_actor *a, tr_ref ref, uint32_t *tag);

/* Take `gone` off the links of the actor behind `ref` (it ended). */
void tr__link_forget(struct tr_system *sys, tr_ref ref, tr_ref gone);

/* Free whatever is left (actor destruction). */
void tr__signal_destroy(struct tr_actor *a);

#endif
