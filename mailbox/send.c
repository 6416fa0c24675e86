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

/* Count a holder that is not a worker of sys (runtime.h, tr__hold);
 * false if the system is stopping, and then it is not counted. */
static bool count_holder(tr_system *sys)
{
    atomic_fetch_add(&sys->foreign_waiters, 1);
    if (!atomic_load(&sys->stopping))
        return true;
    atomic_fetch_sub(&sys->foreign_waiters, 1);
    return false;
}

/* A thread's own mailboxes outlive shutdown, which does not wait for
 * their senders (they may never get room) and does not destroy them (a
 * borrow keeps one): only actors' are counted. */
static bool counts_for_shutdown(tr_system *sys, uint8_t kind)
{
    return kind != TR__SLOT_THREAD_MAILBOX && !tr__own_worker(sys);
}

void *tr__hold_borrow(tr_system *sys, tr_ref ref, tr__hold *h)
{
    h->hazard = NULL;
    h->counted = false;
    /* The slot's kind, without touching what shutdown may be destroying. */
    uint8_t kind;
    if (!tr__slot_peek(&sys->slots, ref, &kind))
        return h->obj = NULL;
    if (counts_for_shutdown(sys, kind)) {
        if (!count_holder(sys))
            return h->obj = NULL; /* stopping: its actors are going */
        h->counted = true;
    }
    h->obj = tr__slot_get(&sys->slots, ref, &h->kind);
    if (!h->obj && h->counted) {
        atomic_fetch_sub(&sys->foreign_waiters, 1);
        h->counted = false;
    }
    return h->obj;
}

int tr__hold_across_wait(tr_system *sys, tr__hold *h)
{
    if (!h->hazard)
        return 0; /* a borrow already, counted if it must be */
    /* Counted while the hazard still holds the target: the destroyer
     * waits for that, so either shutdown sees the count or we see it
     * stopping before we hold what it would not wait for. */
    bool count = counts_for_shutdown(sys, h->kind);
    bool counted = count && count_holder(sys);
    bool alive = (!count || counted) && tr__slot_get(&sys->slots, h->ref, NULL);
    if (counted && !alive)
        atomic_fetch_sub(&sys->foreign_waiters, 1);
    h->counted = counted && alive;
    atomic_store_explicit(h->hazard, TR_REF_NONE, memory_order_release);
    h->hazard = NULL;
    return alive ? 0 : TR_ENOACTOR;
}

void tr__hold_unborrow(tr_system *sys, tr__hold *h)
{
    tr__ref_put(sys, h->ref, h->obj, h->kind);
    if (h->counted)
        atomic_fetch_sub(&sys->foreign_waiters, 1);
}

/* The first and the longest sleep between two tries of a send into a
 * full mailbox of another system. */
#define FAR_RETRY_NS 16000
#define FAR_RETRY_MAX_NS 1000000

static int64_t next_pause(int64_t pause)
{
    return pause < FAR_RETRY_MAX_NS / 2 ? pause * 2 : FAR_RETRY_MAX_NS;
}

/*
 * An actor whose send finds a full mailbox of another system does not
 * wait on that mailbox's list: its own system may stop and free it
 * there, and the other system's receiver may be waking it at that very
 * moment.  It sleeps on its own system's timers instead and tries again,
 * backing off from FAR_RETRY_NS to FAR_RETRY_MAX_NS, holding nothing of
 * the target meanwhile.  It stays counted in the other system's
 * foreign_waiters (so that system outlives its tries) and records that
 * in `far_system`, so that its own system's shutdown uncounts it if it
 * is never resumed.  Once the other system stops, it gives up with
 * TR_ESHUTDOWN: its shutdown waits for the count, and a thread's mailbox
 * there need never get room.  `hold` holds the target on entry and is
 * released here.
 */
static int send_from_another_system(tr_system *sys, tr__hold *hold, struct tr_mailbox *mb,
                                    tr_actor *self, tr_msg *m, tr_deadline deadline)
{
    /* Counted before the hold goes (a borrow, itself counted if it must
     * be): the system outlives the tries. */
    if (!count_holder(sys)) {
        tr__hold_release(sys, hold);
        return TR_ESHUTDOWN;
    }
    int rc = atomic_load_explicit(&mb->closed, memory_order_acquire) ? mb->closed_error : TR_EFULL;
    tr__hold_release(sys, hold);
    self->far_system = sys;
    for (int64_t pause = FAR_RETRY_NS; rc == TR_EFULL; pause = next_pause(pause)) {
        int64_t now = tr_now();
        if (deadline <= 0 || (deadline != TR_FOREVER && now >= deadline)) {
            rc = TR_ETIMEDOUT;
            break;
        }
        /* Never resumed if its own system stops: the teardown releases
         * the payload (actor.c). */
        self->outgoing = m;
        rc = tr__sleep_until(deadline - now < pause ? deadline : now + pause);
        self->outgoing = NULL;
        if (rc == 0)
            rc = atomic_load(&sys->stopping) ? TR_ESHUTDOWN : tr_try_send(sys, hold->ref, m);
    }
    self->far_system = NULL;
    atomic_fetch_sub(&sys->foreign_waiters, 1);
    return rc;
}

/*
 * The rest of a send that found the mailbox full: wait for room and try
 * again until the deadline.  Apart from send() so that the common case,
 * a send that finds room, stays a short function.  `m` is the caller's
 * copy of the message; `hold` holds the target and is released here.
 * A thread that waits on an actor's mailbox stays counted (its hold
 * does it) until it has dropped its borrow, so that shutdown does not
 * destroy the actor under it.
 */
static __attribute__((noinline)) int send_waiting(tr_system *sys, tr__hold *hold,
                                                  struct tr_mailbox *mb, tr_msg *m,
                                                  tr_deadline deadline)
{
    /* An actor stays itself across its waits, on whatever worker; a
     * thread is a worker or not for good. */
    tr__worker *w = tr__worker_now();
    tr_actor *self = w ? w->current : NULL;
    bool waited = false;
    int rc;
    for (;;) {
        if (tr__deadline_passed(deadline)) {
            rc = TR_ETIMEDOUT;
            break;
        }
        if (self && tr__actor_cancelled(self)) {
            rc = TR_ECANCELED;
            break;
        }
        if (!self && w) {
            rc = TR_ECONTEXT; /* a worker outside an actor must not block */
            break;
        }
        if (!self && tr__mailbox_owned_by(mb, NULL)) {
            rc = TR_EDEADLK; /* only this thread could make room */
            break;
        }
        if (self && tr_actor_system(self) != sys)
            return send_from_another_system(sys, hold, mb, self, m, deadline);
        if ((rc = tr__hold_across_wait(sys, hold)))
            return rc; /* died after our peek, or stopping: nothing is held */
        /* If the system stops while we wait, this actor is never resumed:
         * the teardown releases the payload we still own (actor.c). */
        if (self)
            self->outgoing = m;
        rc = tr__mailbox_wait_room(mb, deadline);
        waited = true;
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
    tr__hold_release(sys, hold);
    if (rc == TR_ETIMEDOUT && !waited)
        rc = tr__timed_out(self, deadline); /* with nothing held */
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
