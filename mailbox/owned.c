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
 * thread's record is counted by its mailboxes and by the thread itself
 * (until it owns none, or until it exits).
 *
 * A thread's list is locked, not private to it: tr_system_free, on any
 * thread, destroys the mailboxes a thread left alive in that system and
 * takes them off the list, while the owner may be walking it to send into
 * another system.
 */
#include <pthread.h>
#include <stdlib.h>

#include "../actors/futex.h"
#include "../actors/runtime.h"
#include "../actors/tls.h"

typedef struct thread_owner {
    _Atomic uint32_t flag;           /* 0 while the thread sleeps */
    atomic_uint refs;                /* its mailboxes, + 1 for the thread */
    pthread_mutex_t lock;            /* guards the list (head, links) */
    struct tr__owned_mailbox *head;  /* oldest first */
    atomic_uint version;             /* + 1 at each change of the list */
    _Atomic tr_ref waiting_on;       /* the mailbox a send of it waits on */
    /* The owner's last sender-ref lookup, good while `version` stays
     * (the owner's thread only): a send need not take the lock. */
    const tr_system *seen_sys;
    tr_ref seen_ref;
    unsigned seen_version;
} thread_owner;

struct tr__owned_mailbox {
    struct tr_mailbox mb;            /* first member */
    thread_owner *thread;            /* NULL: owned by mb.owner */
    /* The owner's list, oldest first: next_owned ends with NULL, and the
     * head's prev_owned is the tail, so adding and removing take O(1)
     * however many mailboxes an owner keeps.  prev_owned is NULL once
     * off the list. */
    struct tr__owned_mailbox *next_owned, *prev_owned;
};

static TR__THREAD_LOCAL thread_owner *tls_owner;

/* Drops an exiting thread's count on its record: mailboxes it never freed
 * hold the rest until tr_system_free destroys them. */
static pthread_key_t thread_exit_key;
static bool thread_exit_key_made;

static void thread_owner_put(thread_owner *t)
{
    if (atomic_fetch_sub(&t->refs, 1) == 1) {
        pthread_mutex_destroy(&t->lock);
        free(t);
    }
}

static void thread_exits(void *record)
{
    tls_owner = NULL;
    thread_owner_put(record);
}

__attribute__((constructor)) static void make_thread_exit_key(void)
{
    thread_exit_key_made = pthread_key_create(&thread_exit_key, thread_exits) == 0;
}

/* The library may be unloaded while threads that used it go on: their
 * exit must not call into unmapped code. */
__attribute__((destructor)) static void delete_thread_exit_key(void)
{
    if (thread_exit_key_made)
        pthread_key_delete(thread_exit_key);
}

static tr__owned_mailbox *outer(struct tr_mailbox *mb)
{
    return (tr__owned_mailbox *)mb; /* mb is the first member */
}

/* The thread's record, made with its first mailbox. */
static thread_owner *this_thread(void)
{
    if (tls_owner || !thread_exit_key_made)
        return tls_owner;
    thread_owner *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    atomic_init(&t->refs, 1);
    pthread_mutex_init(&t->lock, NULL);
    if (pthread_setspecific(thread_exit_key, t)) {
        thread_owner_put(t);
        return NULL;
    }
    return tls_owner = t;
}

/* The thread owns no mailbox any more: its record goes with the last
 * one (senders may still hold it), and a later tr_mailbox_new makes a
 * new one. */
static void forget_thread_if_idle(void)
{
    if (!tls_owner)
        return;
    pthread_mutex_lock(&tls_owner->lock);
    bool idle = !tls_owner->head;
    pthread_mutex_unlock(&tls_owner->lock);
    if (idle) {
        pthread_setspecific(thread_exit_key, NULL);
        thread_owner_put(tls_owner);
        tls_owner = NULL;
    }
}

/* Where the owner keeps its list of mailboxes. */
static tr__owned_mailbox **owner_list(struct tr_mailbox *mb)
{
    return mb->owner ? &mb->owner->owned : &outer(mb)->thread->head;
}

/* An actor's list is its own; a thread's is shared with tr_system_free,
 * and each change bumps its version (tr__thread_sender_ref). */
static void lock_list(struct tr_mailbox *mb)
{
    if (!mb->owner)
        pthread_mutex_lock(&outer(mb)->thread->lock);
}

static void unlock_changed_list(struct tr_mailbox *mb)
{
    if (mb->owner)
        return;
    atomic_fetch_add_explicit(&outer(mb)->thread->version, 1, memory_order_release);
    pthread_mutex_unlock(&outer(mb)->thread->lock);
}

static void add_to_owner(struct tr_mailbox *mb)
{
    lock_list(mb);
    tr__owned_mailbox **head = owner_list(mb), *o = outer(mb);
    o->next_owned = NULL;
    if (*head) {
        o->prev_owned = (*head)->prev_owned;
        o->prev_owned->next_owned = o;
        (*head)->prev_owned = o;
    } else {
        o->prev_owned = o;
        *head = o;
    }
    unlock_changed_list(mb);
}

static void remove_from_owner(struct tr_mailbox *mb)
{
    lock_list(mb);
    tr__owned_mailbox **head = owner_list(mb), *o = outer(mb);
    if (o->prev_owned) {
        tr__owned_mailbox *after = o->next_owned ? o->next_owned : *head;
        after->prev_owned = o->prev_owned; /* the head's, if o was the tail */
        if (o == *head)
            *head = o->next_owned;
        else
            o->prev_owned->next_owned = o->next_owned;
        o->prev_owned = o->next_owned = NULL;
    }
    unlock_changed_list(mb);
}

bool tr__mailbox_owned_by(struct tr_mailbox *mb, struct tr_actor *self)
{
    if (mb->owner)
        return self == mb->owner;
    return !self && outer(mb)->thread == tls_owner;
}

_Atomic tr_ref *tr__mailbox_owner_waiting(struct tr_mailbox *mb)
{
    return mb->owner ? &mb->owner->waiting_on : &outer(mb)->thread->waiting_on;
}

_Atomic tr_ref *tr__thread_waiting(void)
{
    return tls_owner ? &tls_owner->waiting_on : NULL;
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
    add_to_owner(&o->mb);
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
    remove_from_owner(mb);
    bool thread = outer(mb)->thread != NULL;
    let_go(mb);
    if (thread)
        forget_thread_if_idle();
}

void tr__actor_free_mailboxes(struct tr_actor *a)
{
    while (a->owned) {
        struct tr_mailbox *mb = &a->owned->mb;
        remove_from_owner(mb);
        let_go(mb);
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

void tr__thread_mailbox_reap(struct tr_mailbox *mb)
{
    remove_from_owner(mb);
    destroy(mb, true);
}

/* Wake a sender waiting for room in each mailbox of the list but `skip`. */
static void check_owned(tr__owned_mailbox *o, struct tr_mailbox *skip)
{
    for (; o; o = o->next_owned)
        if (&o->mb != skip)
            tr__mailbox_check_waiters(&o->mb);
}

static void check_thread_owned(thread_owner *t, struct tr_mailbox *skip)
{
    pthread_mutex_lock(&t->lock);
    check_owned(t->head, skip);
    pthread_mutex_unlock(&t->lock);
}

void tr__actor_idle(struct tr_actor *a)
{
    /* Walk the owned list while the turn is still ours: once the flag is
     * down, another worker may run the next turn and free those mailboxes.
     * Room waiters do not need the flag down first: the fence orders our
     * takes before the nwaiters reads, and pairs with add_waiter. */
    if (a->owned) { /* no fence for the many actors that own none */
        tr__fence();
        check_owned(a->owned, NULL);
    }
    tr__mailbox_owner_idle(&a->mbox);
}

void tr__thread_idle(struct tr_mailbox *mb)
{
    tr__mailbox_owner_idle(mb);
    check_thread_owned(outer(mb)->thread, mb);
}

void tr__owner_release_senders(struct tr_actor *a)
{
    tr__fence(); /* after our takes, before nwaiters: pairs with add_waiter */
    if (a) {
        tr__mailbox_check_waiters(&a->mbox);
        check_owned(a->owned, NULL);
    } else if (tls_owner) {
        check_thread_owned(tls_owner, NULL);
    }
}

void tr__thread_sleep(struct tr_mailbox *mb, tr_deadline deadline)
{
    tr__futex_wait(mb->flag, 0, deadline);
}

static __attribute__((noinline)) tr_ref look_up_sender_ref(thread_owner *t,
                                                          const tr_system *sys)
{
    pthread_mutex_lock(&t->lock);
    tr_ref ref = TR_REF_NONE;
    for (tr__owned_mailbox *o = t->head; o; o = o->next_owned) {
        if (o->mb.sys == sys) {
            ref = o->mb.ref;
            break;
        }
    }
    t->seen_sys = sys;
    t->seen_ref = ref;
    t->seen_version = atomic_load_explicit(&t->version, memory_order_relaxed);
    pthread_mutex_unlock(&t->lock);
    return ref;
}

/* A change that the cached answer misses bumps `version`: the owner's own
 * tr_mailbox_new or free, or tr_system_free of a system where it left a
 * mailbox.  An answer for system B stays right while A's free bumps the
 * version, so reading the version without the lock is enough. */
tr_ref tr__thread_sender_ref(tr_system *sys)
{
    thread_owner *t = tls_owner;
    if (!t)
        return TR_REF_NONE;
    if (t->seen_sys == sys &&
        t->seen_version == atomic_load_explicit(&t->version, memory_order_acquire))
        return t->seen_ref;
    return look_up_sender_ref(t, sys);
}
