/*
 * recv.c - receiving: an owner takes from its mailboxes, and waits for
 * them when they are empty.
 *
 * An owner (an actor, or a thread with mailboxes of its own) waits by
 * lowering its flag, then looking once more, then sleeping: an actor
 * parks (its worker runs others), a thread sleeps on the flag's futex.
 * Any message to any of the owner's mailboxes raises the flag and ends
 * the wait (mailbox.h), so the same wait serves tr_recv, tr_mailbox_recv
 * and tr_select; a wake-up for a mailbox the caller is not waiting on
 * just sends it round its loop again.
 */
#include "../actors/runtime.h"

static int actor_wait(struct tr_actor *a, bool (*ready)(void *), void *arg,
                      tr_deadline deadline)
{
    uint32_t token;
    int rc = tr__actor_park_begin(a, TR__PARK_RECV, deadline, &token);
    if (rc)
        return rc;
    /* Publish: from here a sender that raises the flag wakes us. */
    tr__actor_idle(a);
    if ((ready(arg) || tr__actor_cancelled(a)) && !atomic_exchange(&a->scheduled, 1)) {
        tr__actor_park_cancel(a, token);
        return 0;
    }
    tr__actor_park_switch(a);
    return 0;
}

int tr__owner_wait(struct tr_mailbox *mb, bool (*ready)(void *), void *arg,
                   tr_deadline deadline)
{
    if (tr__deadline_passed(deadline))
        return TR_ETIMEDOUT;
    if (mb->owner) {
        if (tr__actor_cancelled(mb->owner))
            return TR_ECANCELED;
        return actor_wait(mb->owner, ready, arg, deadline);
    }
    tr__thread_idle(mb);
    if (!ready(arg))
        tr__thread_sleep(mb, deadline);
    return 0;
}

static bool has_mail(void *mb)
{
    return tr__owner_has_mail(mb) || tr__mailbox_drained(mb);
}

int tr__recv(struct tr_mailbox *mb, tr_msg *out, tr_deadline deadline)
{
    for (bool waited = false;; waited = true) {
        if (tr__owner_take(mb, out))
            return 0;
        if (tr__mailbox_drained(mb))
            return TR_ECLOSED;
        int rc = tr__owner_wait(mb, has_mail, mb, deadline);
        if (rc == TR_ETIMEDOUT && !waited)
            return tr__timed_out(mb->owner, deadline); /* it never waited */
        if (rc)
            return rc;
    }
}

int tr_recv(tr_msg *out, tr_deadline deadline)
{
    tr_actor *a = tr_current();
    if (!a)
        return TR_ECONTEXT;
    if (!out)
        return TR_EINVAL;
    return tr__cancel_result(tr__recv(&a->mbox, out, deadline));
}
