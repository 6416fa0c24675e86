/*
 * thread_mailbox.c - mailboxes owned by threads that are not workers.
 * The owner blocks on a futex word (`signalled`) that senders set.
 */
#include <pthread.h>
#include <stdlib.h>

#include "../actors/futex.h"
#include "../actors/runtime.h"

typedef struct thread_mailbox {
    struct tr_mailbox mb;
    pthread_t owner;
    struct thread_mailbox *next_owned; /* this thread's other mailboxes */
} thread_mailbox;

/* The mailboxes this thread owns, newest last in effect: a send carries
 * the ref of the oldest one that belongs to the same system. */
static __thread thread_mailbox *tls_owned;

static thread_mailbox *outer(struct tr_mailbox *mb)
{
    return (thread_mailbox *)mb; /* mb is the first member */
}

static bool owned_here(struct tr_mailbox *mb)
{
    return !mb->owner && pthread_equal(outer(mb)->owner, pthread_self());
}

int tr_mailbox_new(tr_system *sys, uint32_t capacity, tr_mailbox **out)
{
    if (!sys || !out)
        return TR_EINVAL;
    if (tr__worker_now())
        return TR_ECONTEXT;
    if (atomic_load(&sys->stopping))
        return TR_ESHUTDOWN;
    uint32_t ring_size = tr__mailbox_ring_size(sys, capacity);
    if (!ring_size)
        return TR_EINVAL;
    thread_mailbox *t = calloc(1, sizeof *t);
    if (!t)
        return TR_ENOMEM;
    tr__mailbox_init(&t->mb, sys, ring_size, NULL);
    t->owner = pthread_self();
    int rc = tr__slot_alloc(&sys->slots, &t->mb, TR__SLOT_MAILBOX, &t->mb.ref);
    if (rc) {
        free(t);
        return rc;
    }
    thread_mailbox **tail = &tls_owned;
    while (*tail)
        tail = &(*tail)->next_owned;
    *tail = t;
    *out = &t->mb;
    return 0;
}

tr_ref tr_mailbox_ref(const tr_mailbox *mb)
{
    return mb ? mb->ref : TR_REF_NONE;
}

int tr_mailbox_recv(tr_mailbox *mb, tr_msg *out, tr_deadline deadline)
{
    if (!mb || !out)
        return TR_EINVAL;
    if (!owned_here(mb))
        return TR_ECONTEXT;
    for (;;) {
        if (tr__mailbox_take(mb, out))
            return 0;
        if (deadline <= 0 || (deadline != TR_FOREVER && tr_now() >= deadline))
            return TR_ETIMEDOUT;
        /* Announce that we sleep, then look once more. */
        tr__mailbox_owner_idle(mb, &mb->signalled);
        if (!tr__mailbox_empty(mb))
            continue;
        tr__futex_wait(&mb->signalled, 0, deadline);
    }
}

void tr_mailbox_free(tr_mailbox *mb)
{
    if (!mb || !owned_here(mb))
        return;
    for (thread_mailbox **p = &tls_owned; *p; p = &(*p)->next_owned) {
        if (*p == outer(mb)) {
            *p = outer(mb)->next_owned;
            break;
        }
    }
    tr__mailbox_close(mb);
    if (tr__slot_kill(&mb->sys->slots, mb->ref))
        tr__thread_mailbox_destroy(mb);
}

void tr__thread_mailbox_destroy(struct tr_mailbox *mb)
{
    tr__hazard_wait(mb->sys, mb->ref);
    tr__mailbox_destroy(mb);
    tr__slot_release(&mb->sys->slots, mb->ref);
    free(outer(mb));
}

tr_ref tr__sender_ref(tr_system *sys)
{
    tr__worker *w = tr__worker_now();
    if (w)
        return w->current && w->sys == sys ? w->current->mbox.ref : TR_REF_NONE;
    for (thread_mailbox *t = tls_owned; t; t = t->next_owned)
        if (t->mb.sys == sys)
            return t->mb.ref;
    return TR_REF_NONE;
}
