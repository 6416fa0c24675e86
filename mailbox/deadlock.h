/*
 * deadlock.h - finding cycles of actors that wait for room in each
 * other's full mailboxes.
 *
 * An actor about to park in a send publishes the mailbox it waits on
 * (tr__deadlock_enter) and then follows the chain: that mailbox's owner,
 * the mailbox the owner itself waits on, and so on.  If the chain comes
 * back to the actor, no one in it can ever take a message again (each
 * owner is parked in its send), so the send fails with TR_EDEADLK.
 *
 * Guarantee: when a cycle of parked sends forms, at least one of its
 * actors sees it (each publishes before it looks, with seq_cst, so the
 * last to publish sees all the others).  Two may see it at once and both
 * fail.  A receiver that wakes a sender clears the sender's entry first,
 * so a chain that is about to move is not taken for a cycle, but a look
 * that races with such a wake-up may still report one.  Chains longer
 * than TR__DEADLOCK_MAX_HOPS, and cycles through threads that are not
 * actors (their sends block with a deadline), are not detected.
 */
#ifndef TR_DEADLOCK_H
#define TR_DEADLOCK_H

#include <stdbool.h>

struct tr_actor;
struct tr_mailbox;

#define TR__DEADLOCK_MAX_HOPS 1024

/* Publish that `self` waits for room in `mb`; true if that closes a cycle. */
bool tr__deadlock_enter(struct tr_actor *self, struct tr_mailbox *mb);

/* `a` waits no more (itself, or the receiver that woke it). */
void tr__deadlock_leave(struct tr_actor *a);

#endif
