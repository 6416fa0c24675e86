/*
 * troupe/select.h - wait on several mailboxes at once.
 *
 * tr_select waits until one of its cases can go ahead and then does that
 * one case only: receive from one of the caller's mailboxes, or send a
 * message to a mailbox that has room (Go's select, with send cases).  It
 * also ends on its deadline and, in an actor, on cancellation.
 *
 * Fairness: in rotation.  Each select starts looking just after the case
 * that fired in the caller's previous select (an actor's or a thread's
 * own rotation) and fires the first ready one, so when k cases stay ready
 * each fires once every k selects, and a busy mailbox never starves a
 * quiet one.  (Rotation rather than a random pick: it stops at the first
 * ready case instead of reading every mailbox.)  With TR_SELECT_BIASED
 * the first ready case in the order given fires (tokio's
 * `select! { biased; ... }`), for priorities such as a control mailbox
 * before a data mailbox.
 *
 * Cancellation safety: only the case that fired did anything.  A receive
 * case that did not fire took no message; a send case that did not fire
 * sent nothing, and its caller still owns its payload.  This holds
 * whether tr_select returns a case, TR_ETIMEDOUT or TR_ECANCELED.
 */
#ifndef TROUPE_SELECT_H
#define TROUPE_SELECT_H

#include <stddef.h>

#include "troupe/export.h"
#include "troupe/mailbox.h"
#include "troupe/msg.h"
#include "troupe/system.h"
#include "troupe/time.h"

enum tr_select_op {
    TR_SELECT_RECV = 1, /* take a message from `mailbox` */
    TR_SELECT_SEND = 2  /* send `msg` to `to` once it has room */
};

typedef struct tr_select_case {
    int op;               /* TR_SELECT_RECV or TR_SELECT_SEND */
    tr_mailbox *mailbox;  /* RECV: a mailbox the caller owns; NULL: the
                             calling actor's own mailbox */
    tr_ref to;            /* SEND: the receiver */
    tr_msg msg;           /* SEND: the message (from is set for you);
                             RECV: the message taken, if this case fired */
    int rc;               /* set on the case that fired: 0, or why it fired
                             without a message: TR_ECLOSED (a receive on a
                             closed, drained mailbox; a send to a closed
                             mailbox) or TR_ENOACTOR (a send to an actor or
                             mailbox that is gone) */
} tr_select_case;

/* Fire the first ready case in the order given, not in rotation. */
#define TR_SELECT_BIASED 1u

/* The most cases one tr_select takes. */
#define TR_SELECT_MAX 32

/*
 * tr_select - wait until one of `cases` is ready or until `deadline`,
 * then carry out that one case and return its index; its `rc` tells how
 * it went.  An actor parks while it waits, a thread blocks.  Receive
 * cases must name mailboxes the caller owns.  A case that fires with a
 * message: the receiver of a send case owns the payload, the caller owns
 * a received one.
 * If the system stops while an actor waits in a select, the payloads of
 * its send cases are released with the actor.  A thread waiting in send
 * cases on actors is woken by the stop (they fire with TR_ENOACTOR).
 * An actor selects in its own system only: a wait for room in another
 * system's mailbox is a retry loop (tr_send), not a place on its list.
 * Returns the index of the case that fired, TR_ETIMEDOUT, TR_ECANCELED
 * (the calling actor was cancelled), TR_EDEADLK (it would wait, and every
 * case is a send into a full mailbox the caller owns: no one else could
 * make room; unlike tr_send's, a select's waits are not followed through
 * other actors to find longer cycles),
 * TR_EINVAL (NULL or too many cases, unknown flags, an unknown op, a NULL
 * mailbox outside an actor, a mailbox of another system), TR_ECONTEXT (a mailbox the caller does not own, an actor of
 * another system, or a worker's thread outside an actor that would have
 * to wait), TR_ESHUTDOWN (a thread's select with send cases,
 * in a system that is stopping), or TR_ENOMEM (a send case's first
 * message to a mailbox found no memory for its ring: nothing was sent,
 * and its payload stays with the caller).
 */
TR_API int tr_select(tr_system *sys, tr_select_case *cases, size_t ncases,
                     unsigned flags, tr_deadline deadline);

#endif
