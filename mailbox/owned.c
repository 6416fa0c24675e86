/*
 * owned.c - mailboxes made with tr_mailbox_new, owned by an actor or by a
 * thread that is not a worker.
 *
 * All the mailboxes of one owner share its flag (mailbox.h): an actor's
 * `scheduled`, or a word of the thread's own (`thread_owner`) that the
 * thread sleeps on.  So a message in any of them wakes the owner, and one
 * wait can cover several mailboxes (select).
 *
 * Lifetimes: senders reach a mailbox through its slot and touch its
 * owner's flag, so the owner's memory must outlive the mailbox.  An
 * actor-owned mailbox borrows its actor's slot until it is destroyed; a
 * thread's record is counted by its mailboxes and by the thread itself.
 */
#include <pthread.h>
#include <stdlib.h>

#include "../actors/futex.h"
#include "../actors/runtime.h"
#include "../actors/tls.h"

typedef struct thread_owner {
    _Atomic uint32_t flag;           /* 0 while the thread sleeps */
    atomic_uint refs;                /* its mailboxes, + 1 while it owns any */
    struct tr__owned_mailbox *head;  /* oldest first (the owner's thread only) */
} thread_owner;

struct tr__owned_mailbox {
    struct tr_mailbox mb;            /* first member */
    thread_owner *thread;            /* NULL: owned by mb.owner */
    struct tr__owned_mailbox *next_owned;
};

static TR__THREAD_LOCAL thread_owner *tls_owner;

static tr__owned_mailbox *outer(struct tr_mailbox *mb)
{
    return (tr__owned_mailbox *)mb; /* mb is the first member */
}

/* The thread's record, made with its first mailbox. */
static thread_owner *this_thread(void)
{
    if (!tls_owner && (tls_owner = calloc(1, sizeof *tls_owner)))
        atomic_init(&tls_owner->refs, 1);
    return tls_owner;
}

static void thread_owner_put(thread_owner *t)
{
    if (atomic_fetch_sub(&t->refs, 1) == 1)
        free(t);
}

/* The thread owns no mailbox any more: its record goes with the last
 * one (senders may still hold it), and a later tr_mailbox_new makes a
 * new one. */
static void forget_thread_if_idle(void)
{
    if (tls_owner && !tls_owner->head) {
        thread_owner_put(tls_owner);
        tls_owner = NULL;
    }
}

/* Where the owner keeps its list of mailboxes. */
static tr__owned_mailbox **owner_list(struct tr_mailbox *mb)
{
    return mb->owner ? &mb->owner->owned : &outer(mb)->thread->head;
}

bool tr__mailbox_owned_by(struct tr_mailbox *mb, struct tr_actor *self)
{
    if (mb->owner)
        return self == mb->owner;
    return !self && outer(mb)->thread == tls_owner;
}

bool tr__mailbox_owned_here(struct tr_mailbox *mb)
{
    return tr__mailbox_owned_by(mb, tr_current());
}

int tr_mailbox_new(tr_system *sys, uint32_t capacity, tr_mailbox **out)
{
    if (!sys || !out)
        return TR_EINVAL;
    tr__worker *w = tr__worker_now();
    struct tr_actor *actor = w ? w->current : NULL;
    /* An actor owns mailboxes of its own system only; a worker outside
     * an actor has no one to own it. */
    if (w && (!actor || w->sys != sys))
        return TR_ECONTEXT;
    if (atomic_load(&sys->stopping))
        return TR_ESHUTDOWN;
    uint32_t ring_size = tr__mailbox_ring_size(sys, capacity);
    if (!ring_size)
        return TR_EINVAL;
    tr__owned_mailbox *o = calloc(1, sizeof *o);
    if (!o)
        return TR_ENOMEM;
    int rc = TR_ENOMEM;
    if (actor) {
        /* Keeps the actor (and its flag) alive while the mailbox lives. */
        if (!tr__slot_get(&sys->slots, actor->mbox.ref, NULL))
            goto free_mailbox;
        tr__mailbox_init(&o->mb, sys, ring_size, actor, &actor->scheduled, TR_ECLOSED);
    } else {
        if (!(o->thread = this_thread()))
            goto free_mailbox;
        atomic_fetch_add(&o->thread->refs, 1);
        tr__mailbox_init(&o->mb, sys, ring_size, NULL, &o->thread->flag, TR_ECLOSED);
    }
    rc = tr__slot_alloc(&sys->slots, tr__slot_cache_of(sys), &o->mb,
                        actor ? TR__SLOT_MAILBOX : TR__SLOT_THREAD_MAILBOX, &o->mb.ref);
    if (rc)
        goto drop_owner;
    tr__owned_mailbox **tail = owner_list(&o->mb);
    while (*tail)
        tail = &(*tail)->next_owned;
    *tail = o;
    *out = &o->mb;
    return 0;

drop_owner:
    if (actor)
        tr__ref_put(sys, actor->mbox.ref, actor, TR__SLOT_ACTOR);
    else
        thread_owner_put(o->thread);
free_mailbox:
    if (!actor)
        forget_thread_if_idle();
    free(o);
    return rc;
}

tr_ref tr_mailbox_ref(const tr_mailbox *mb)
{
    return mb ? mb->ref : TR_REF_NONE;
}

int tr_mailbox_recv(tr_mailbox *mb, tr_msg *out, tr_deadline deadline)
{
    if (!mb || !out)
        return TR_EINVAL;
    if (!tr__mailbox_owned_here(mb))
        return TR_ECONTEXT;
    return tr__cancel_result(tr__recv(mb, out, deadline));
}

int tr_mailbox_close(tr_mailbox *mb)
{
    if (!mb)
        return TR_EINVAL;
    if (!tr__mailbox_owned_here(mb))
        return TR_ECONTEXT;
    tr__mailbox_close(mb);
    return 0;
}

/* Close, forget, and destroy once the last borrower lets go. */
static void let_go(struct tr_mailbox *mb)
{
    tr__mailbox_close(mb);
    if (tr__slot_kill(&mb->sys->slots, mb->ref))
        tr__owned_mailbox_destroy(mb);
}

void tr_mailbox_free(tr_mailbox *mb)
{
    if (!mb || !tr__mailbox_owned_here(mb))
        return;
    for (tr__owned_mailbox **p = owner_list(mb); *p; p = &(*p)->next_owned) {
        if (*p == outer(mb)) {
            *p = outer(mb)->next_owned;
            break;
        }
    }
    bool thread = outer(mb)->thread != NULL;
    let_go(mb);
    if (thread)
        forget_thread_if_idle();
}

void tr__actor_free_mailboxes(struct tr_actor *a)
{
    while (a->owned) {
        tr__owned_mailbox *o = a->owned;
        a->owned = o->next_owned;
        let_go(&o->mb);
    }
}

static void destroy(struct tr_mailbox *mb, bool drop_owner)
{
    tr_system *sys = mb->sys;
    tr__hazard_wait(sys, mb->ref);
    tr__mailbox_destroy(mb);
    tr__slot_release(&sys->slots, tr__slot_cache_of(sys), mb->ref);
    if (outer(mb)->thread)
        thread_owner_put(outer(mb)->thread);
    else if (drop_owner)
        tr__ref_put(sys, mb->owner->mbox.ref, mb->owner, TR__SLOT_ACTOR);
    free(outer(mb));
}

void tr__owned_mailbox_destroy(struct tr_mailbox *mb)
{
    destroy(mb, true);
}

void tr__owned_mailbox_teardown(struct tr_mailbox *mb)
{
    destroy(mb, false); /* its actor is destroyed by the teardown too */
}

/* Wake a sender waiting for room in each mailbox of the list but `skip`. */
static void check_owned(tr__owned_mailbox *o, struct tr_mailbox *skip)
{
    for (; o; o = o->next_owned)
        if (&o->mb != skip)
            tr__mailbox_check_waiters(&o->mb);
}

void tr__actor_idle(struct tr_actor *a)
{
    tr__mailbox_owner_idle(&a->mbox);
    check_owned(a->owned, NULL);
}

void tr__thread_idle(struct tr_mailbox *mb)
{
    tr__mailbox_owner_idle(mb);
    check_owned(outer(mb)->thread->head, mb);
}

void tr__owner_release_senders(struct tr_actor *a)
{
    tr__fence(); /* after our takes, before nwaiters: pairs with add_waiter */
    if (a) {
        tr__mailbox_check_waiters(&a->mbox);
        check_owned(a->owned, NULL);
    } else if (tls_owner) {
        check_owned(tls_owner->head, NULL);
    }
}

void tr__thread_sleep(struct tr_mailbox *mb, tr_deadline deadline)
{
    tr__futex_wait(mb->flag, 0, deadline);
}

tr_ref tr__thread_sender_ref(tr_system *sys)
{
    for (tr__owned_mailbox *o = tls_owner ? tls_owner->head : NULL; o; o = o->next_owned)
        if (o->mb.sys == sys)
            return o->mb.ref;
    return TR_REF_NONE;
}
