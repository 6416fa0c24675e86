/* send.c - tr_send: find the mailbox behind a ref, enqueue, wait if full. */
#include "../actors/runtime.h"

void tr__ref_put(tr_system *sys, tr_ref ref, void *obj, uint8_t kind)
{
    if (!tr__slot_put(&sys->slots, ref))
        return;
    if (kind == TR__SLOT_ACTOR)
        tr__actor_destroy(obj);
    else
        tr__thread_mailbox_destroy(obj);
}

struct tr_mailbox *tr__mailbox_borrow(tr_system *sys, tr_ref ref, void **obj,
                                      uint8_t *kind)
{
    *obj = tr__slot_get(&sys->slots, ref, kind);
    if (!*obj)
        return NULL;
    return *kind == TR__SLOT_ACTOR ? &((struct tr_actor *)*obj)->mbox : *obj;
}

static int send(tr_system *sys, tr_ref to, const tr_msg *msg,
                tr_deadline deadline, bool wait)
{
    if (!sys || !msg)
        return TR_EINVAL;
    uint8_t kind;
    void *obj;
    struct tr_mailbox *mb = tr__mailbox_borrow(sys, to, &obj, &kind);
    if (!mb)
        return TR_ENOACTOR;

    tr_msg m = *msg;
    m.from = tr__sender_ref(sys);
    /* A thread that waits on an actor is counted until it has dropped its
     * borrow, so that shutdown does not destroy the actor under it. */
    bool counted = false;
    int rc;
    for (;;) {
        if (atomic_load_explicit(&mb->closed, memory_order_relaxed)) {
            rc = TR_ENOACTOR;
            break;
        }
        rc = tr__mailbox_put(mb, &m);
        if (rc != TR_EFULL || !wait)
            break;
        if (deadline <= 0 || (deadline != TR_FOREVER && tr_now() >= deadline)) {
            rc = TR_ETIMEDOUT;
            break;
        }
        if (!counted && kind == TR__SLOT_ACTOR && !tr__worker_now()) {
            atomic_fetch_add(&sys->foreign_waiters, 1);
            counted = true;
        }
        rc = tr__mailbox_wait_room(mb, deadline);
        if (rc)
            break;
    }
    if (rc == 0)
        tr__mailbox_notify(mb);
    tr__ref_put(sys, to, obj, kind);
    if (counted)
        atomic_fetch_sub(&sys->foreign_waiters, 1);
    return rc;
}

int tr_send(tr_system *sys, tr_ref to, const tr_msg *msg, tr_deadline deadline)
{
    return send(sys, to, msg, deadline, true);
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
