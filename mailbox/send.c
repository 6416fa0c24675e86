/* send.c - tr_send: find the mailbox behind a ref, enqueue, wait if full. */
#include "../actors/runtime.h"

void tr__ref_put(tr_system *sys, tr_ref ref, void *obj, uint8_t kind)
{
    if (!tr__slot_put(&sys->slots, ref))
        return;
    if (kind == TR__SLOT_ACTOR)
        tr__actor_destroy(obj);
    else
        tr__owned_mailbox_destroy(obj);
}

tr_ref tr__mailbox_owner_ref(tr_system *sys, tr_ref ref)
{
    void *obj;
    uint8_t kind;
    struct tr_mailbox *mb = tr__mailbox_borrow(sys, ref, &obj, &kind);
    if (!mb)
        return TR_REF_NONE;
    tr_ref owner = mb->owner ? mb->owner->mbox.ref : TR_REF_NONE;
    tr__ref_put(sys, ref, obj, kind);
    return owner;
}

struct tr_mailbox *tr__mailbox_borrow(tr_system *sys, tr_ref ref, void **obj,
                                      uint8_t *kind)
{
    *obj = tr__slot_get(&sys->slots, ref, kind);
    if (!*obj)
        return NULL;
    return tr__mailbox_of(*obj, *kind);
}

bool tr__hold_across_wait(tr_system *sys, tr__hold *h)
{
    if (!h->hazard)
        return true;
    bool alive = tr__slot_get(&sys->slots, h->ref, NULL) != NULL;
    atomic_store_explicit(h->hazard, TR_REF_NONE, memory_order_release);
    h->hazard = NULL;
    return alive;
}

/*
 * The rest of a send that found the mailbox full: wait for room and try
 * again until the deadline.  Apart from send() so that the common case,
 * a send that finds room, stays a short function.  `m` is the caller's
 * copy of the message; `hold` holds the target and is released here.
 */
static __attribute__((noinline)) int send_waiting(tr_system *sys, tr__hold *hold,
                                                  struct tr_mailbox *mb, tr_msg *m,
                                                  tr_deadline deadline)
{
    /* A thread that waits on an actor's mailbox is counted until it has
     * dropped its borrow, so that shutdown does not destroy it under it. */
    bool counted = false, held = true;
    int rc;
    for (;;) {
        if (deadline <= 0 || (deadline != TR_FOREVER && tr_now() >= deadline)) {
            rc = TR_ETIMEDOUT;
            break;
        }
        tr_actor *self = tr_current();
        if (self && tr__actor_cancelled(self)) {
            rc = TR_ECANCELED;
            break;
        }
        /* Any sender that is not a worker of this system: its shutdown
         * would not wait for it otherwise.  Counted while the hazard still
         * holds the target, and the close looked at after that (both
         * seq_cst): shutdown closes the mailbox before it reads the count,
         * so either it waits for us or we see the close and never turn
         * the hazard, which its destroyer waits for, into a borrow, which
         * it would not. */
        tr__worker *now = tr__worker_now(); /* we may have moved */
        if (!counted && mb->owner && !(now && now->sys == sys)) {
            atomic_fetch_add(&sys->foreign_waiters, 1);
            counted = true;
            if (atomic_load(&mb->closed)) {
                rc = mb->closed_error;
                break;
            }
        }
        if (!tr__hold_across_wait(sys, hold)) {
            rc = TR_ENOACTOR; /* died after our peek: nothing is held */
            held = false;
            break;
        }
        /* If the system stops while we wait, this actor is never resumed:
         * the teardown releases the payload we still own (actor.c). */
        if (self)
            self->outgoing = m;
        rc = tr__mailbox_wait_room(mb, deadline);
        if (self)
            self->outgoing = NULL;
        if (rc)
            break;
        if (atomic_load_explicit(&mb->closed, memory_order_relaxed)) {
            rc = mb->closed_error;
            break;
        }
        if ((rc = tr__mailbox_put(mb, m)) != TR_EFULL)
            break;
    }
    if (rc == 0)
        tr__mailbox_notify(mb);
    if (held)
        tr__hold_release(sys, hold);
    if (counted)
        atomic_fetch_sub(&sys->foreign_waiters, 1);
    return rc;
}

/* Inlined into tr_send and tr_try_send: a call less on every message. */
static inline __attribute__((always_inline)) int send(tr_system *sys, tr_ref to,
                                                      const tr_msg *msg,
                                                      tr_deadline deadline, bool wait)
{
    if (!sys || !msg)
        return TR_EINVAL;
    /* One look at the thread's worker: it is a call that cannot be
     * inlined (runtime.h), and the fast path needs it twice. */
    tr__worker *w = tr__worker_now();
    tr_msg m = *msg;
    m.from = tr__sender_ref(sys, w);
    tr__hold hold;
    void *obj = tr__hold_ref(sys, w, to, &hold);
    if (!obj)
        return TR_ENOACTOR;
    struct tr_mailbox *mb = tr__mailbox_of(obj, hold.kind);
    int rc;
    if (atomic_load_explicit(&mb->closed, memory_order_relaxed))
        rc = mb->closed_error;
    else if ((rc = tr__mailbox_put(mb, &m)) == TR_EFULL && wait)
        return send_waiting(sys, &hold, mb, &m, deadline);
    if (rc == 0)
        tr__mailbox_notify(mb);
    tr__hold_release(sys, &hold);
    return rc;
}

/* An abandoned actor ends at a send that would wait, which then fails
 * with TR_ECANCELED; a send that finds room just goes (it does not
 * block).  The payload goes with it: its owner's code never runs again. */
int tr_send(tr_system *sys, tr_ref to, const tr_msg *msg, tr_deadline deadline)
{
    int rc = send(sys, to, msg, deadline, true);
    if (rc == TR_ECANCELED && tr__abandoned(tr_current())) {
        tr_msg m = *msg;
        tr_msg_release(&m);
        tr_exit(TR_EKILLED);
    }
    return rc;
}

int tr_try_send(tr_system *sys, tr_ref to, const tr_msg *msg)
{
    return send(sys, to, msg, TR_NOW, false);
}

void tr_msg_release(tr_msg *msg)
{
    if (msg && msg->free_fn) {
        tr_payload_free fn = msg->free_fn;
        msg->free_fn = NULL;
        fn(msg->ptr, msg->len);
    }
}
