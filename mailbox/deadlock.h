/*
 * deadlock.h - finding cycles of senders that wait for room in each
 * other's full mailboxes.
 *
 * A sender about to wait in a send, an actor or a thread that owns
 * mailboxes, publishes the mailbox it waits on in its owner word
 * (tr__mailbox_owner_waiting) and then follows the chain: that mailbox's
 * owner, the mailbox the owner itself waits on, and so on.  If the chain
 * comes back to the sender, no one in it can ever take a message again
 * (each owner is waiting in its send), so the send fails with TR_EDEADLK.
 *
 * Guarantee: when a cycle of waiting sends forms, at least one of its
 * senders sees it (each publishes before it looks, with seq_cst, so the
 * last to publish sees all the others).  Two may see it at once and both
 * fail.  A receiver that wakes a sender clears the sender's word first,
 * so a chain that is about to move is not taken for a cycle, but a look
 * that races with such a wake-up may still report one.  Chains longer
 * than TR__DEADLOCK_MAX_HOPS, and cycles through a select's send case (a
 * select publishes nothing), are not detected.
 */
#ifndef TR_DEADLOCK_H
#define TR_DEADLOCK_H

#include <stdbool.h>

#include "troupe/msg.h"

struct tr_mailbox;

#define TR__DEADLOCK_MAX_HOPS 1024

/* Publish in `self` (the caller's owner word) that it waits for room in
 * `mb`, which it holds; true if that closes a cycle. */
bool tr__deadlock_enter(_Atomic tr_ref *self, struct tr_mailbox *mb);

/* The owner of `word` waits no more (itself, or the receiver that woke
 * it). */
void tr__deadlock_leave(_Atomic tr_ref *word);

#endif
