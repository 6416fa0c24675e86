/*
 * troupe/mailbox.h - mailboxes owned by threads that are not actors.
 *
 * The embedding application talks to actors from its own threads: it
 * sends with tr_send, and to receive replies it creates a mailbox, passes
 * tr_mailbox_ref() as the sender of its requests (messages it sends while
 * it owns a mailbox carry that ref), and receives with a deadline.
 *
 * A mailbox belongs to the thread that created it: only that thread may
 * receive from it or free it.  Its ref works with tr_send from anywhere.
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
 * tr_mailbox_new - create a mailbox owned by the calling thread, which
 * must not be a worker.  `capacity` as in tr_spawn_opts (0: the system's
 * default).  While the thread owns it, tr_send from this thread to the
 * same system stamps the mailbox's ref as the sender (with several, the
 * oldest one).
 * Returns 0, TR_EINVAL, TR_ENOMEM, TR_ELIMIT, TR_ESHUTDOWN, or
 * TR_ECONTEXT (called from an actor: actor-owned mailboxes come later).
 */
TR_API int tr_mailbox_new(tr_system *sys, uint32_t capacity,
                          tr_mailbox **out);

/* tr_mailbox_ref - the ref that others send to. */
TR_API tr_ref tr_mailbox_ref(const tr_mailbox *mb);

/*
 * tr_mailbox_recv - take the next message, blocking the calling thread
 * until one arrives or until `deadline`.  Only the owner may call it.
 * Returns 0, TR_ETIMEDOUT, TR_EINVAL, or TR_ECONTEXT (not the owner).
 */
TR_API int tr_mailbox_recv(tr_mailbox *mb, tr_msg *out, tr_deadline deadline);

/*
 * tr_mailbox_depth - how many messages wait in the mailbox behind `ref`
 * (an actor's or a thread's) and how many it can hold.  The depth is a
 * snapshot: senders and the receiver keep moving.  Any thread may call it.
 * Returns 0, TR_EINVAL or TR_ENOACTOR.
 */
TR_API int tr_mailbox_depth(tr_system *sys, tr_ref ref, uint32_t *depth,
                            uint32_t *capacity);

/*
 * tr_mailbox_free - close and free the mailbox: later sends fail with
 * TR_ENOACTOR, queued messages are released.  Only the owner may call
 * it.  NULL is ignored.
 */
TR_API void tr_mailbox_free(tr_mailbox *mb);

#endif
