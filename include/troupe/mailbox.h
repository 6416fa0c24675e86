/*
 * troupe/mailbox.h - mailboxes as values: more mailboxes for an actor,
 * and mailboxes for threads that are not actors.
 *
 * Every actor has its own mailbox (its ref is the actor's ref).  With
 * tr_mailbox_new an actor makes more, each bounded with a capacity of its
 * own, like Go channels that only their owner reads: a control channel
 * beside a data channel, a reply box per request.  A thread of the
 * embedding application makes one to receive replies: while it owns a
 * mailbox, messages it sends carry that mailbox's ref as their sender.
 *
 * A mailbox belongs to whoever created it: only the owner receives from
 * it, closes it or frees it.  Its ref (tr_mailbox_ref) goes anywhere and
 * works with tr_send and tr_try_send from any thread.  A message to any
 * mailbox of an owner wakes that owner, so tr_select can wait on several.
 *
 * Closing: once closed (tr_mailbox_close, tr_mailbox_free, or the owning
 * actor's exit), sends fail with TR_ECLOSED, senders waiting for room
 * wake with TR_ECLOSED, and the owner can still take what is queued,
 * after which receives return TR_ECLOSED.  Once freed, its ref is stale:
 * sends return TR_ENOACTOR and whatever was queued is released.  A send
 * that races with the close itself may still succeed: its message is
 * then there for the owner's next receive, or released when the mailbox
 * is freed; it is never lost without its destructor running.
 */
#ifndef TROUPE_MAILBOX_H
#define TROUPE_MAILBOX_H

#include <stdint.h>

#include "troupe/export.h"
#include "troupe/msg.h"
#include "troupe/system.h"
#include "troupe/time.h"

typedef struct tr_mailbox tr_mailbox;

/*
 * tr_mailbox_new - create a mailbox owned by the caller: the calling
 * actor (it must belong to `sys`), or the calling thread if it is not a
 * worker.  `capacity` as in tr_spawn_opts (0: the system's default).  An
 * actor's mailboxes are freed when it exits; a thread frees its own with
 * tr_mailbox_free, or leaves them to tr_system_free.
 * Returns 0, TR_EINVAL, TR_ENOMEM, TR_ELIMIT, TR_ESHUTDOWN, or
 * TR_ECONTEXT (a worker outside an actor, or an actor of another system).
 */
TR_API int tr_mailbox_new(tr_system *sys, uint32_t capacity,
                          tr_mailbox **out);

/* tr_mailbox_ref - the ref that others send to. */
TR_API tr_ref tr_mailbox_ref(const tr_mailbox *mb);

/*
 * tr_mailbox_recv - take the next message, waiting until one arrives or
 * until `deadline` (an actor parks, a thread blocks).  Only the owner may
 * call it.  The caller owns the message.
 * Returns 0, TR_ETIMEDOUT, TR_ECLOSED (closed and nothing left),
 * TR_ECANCELED (the owning actor was cancelled), TR_EINVAL, TR_ECONTEXT
 * (not the owner), or TR_ENOMEM (an actor with no stack to go on with).
 */
TR_API int tr_mailbox_recv(tr_mailbox *mb, tr_msg *out, tr_deadline deadline);

/*
 * tr_mailbox_close - refuse further messages (see Closing above); what is
 * queued stays for the owner to take.  Only the owner may call it; a
 * second close does nothing.  Returns 0, TR_EINVAL or TR_ECONTEXT.
 */
TR_API int tr_mailbox_close(tr_mailbox *mb);

/*
 * tr_mailbox_depth - how many messages wait in the mailbox behind `ref`
 * (an actor's or a thread's) and how many it can hold.  The depth is a
 * snapshot: senders and the receiver keep moving.  It is the count at one
 * instant, never more than the capacity; only a caller that keeps losing
 * the race with a receiver taking very fast gets a count that may be
 * higher than any one instant's.  Any thread may call it.  `capacity` may
 * be NULL; `depth` may not.
 * Returns 0, TR_EINVAL (NULL sys or depth) or TR_ENOACTOR.
 */
TR_API int tr_mailbox_depth(tr_system *sys, tr_ref ref, uint32_t *depth,
                            uint32_t *capacity);

/*
 * tr_mailbox_free - close and free the mailbox: its ref goes stale (sends
 * return TR_ENOACTOR) and queued messages are released.  Only the owner
 * may call it; anyone else's call, and NULL, are ignored.  Like free(),
 * once: the pointer is invalid afterwards, and a second call reads freed
 * memory.  A thread's mailbox left alive, even by a thread that has
 * ended, is freed by tr_system_free of its system, with what it holds;
 * its pointer is invalid afterwards, as after tr_mailbox_free.
 */
TR_API void tr_mailbox_free(tr_mailbox *mb);

#endif
