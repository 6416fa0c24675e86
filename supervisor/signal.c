/* signal.c - queueing, taking and sending exit and DOWN notices; see signal.h. */
#include "signal.h"

#include <stdlib.h>

#include "../actors/runtime.h"

/* The receiver ends because a linked actor ended with `reason`. */
static void kill_by_link(struct tr_actor *a, int reason)
{
    int none = 0;
    /* The first such exit names the reason; 0 means "not killed". */
    atomic_compare_exchange_strong(&a->kill_reason, &none, reason);
    atomic_store(&a->cancelled, true); /* seq_cst: before the interrupt */
    tr__actor_interrupt(a);
}

/* Whether a notice concerns a non-trapping receiver: exits only kill. */
static bool delivered_as_message(struct tr_actor *a, const tr_msg *m)
{
    return m->tag != TR_TAG_EXIT || atomic_load(&a->trap_exits);
}

/*
 * Queue `m` for `to` (an actor ref); dropped if it has ended.  An exit
 * (from a linked actor) also ends the link on the receiver's side: a
 * trapping receiver drops it when it takes the notice (under the lock it
 * takes anyway: a supervisor with 100,000 children is one such), any
 * other right here.
 */
static void send_signal(tr_system *sys, tr_ref to, const tr_msg *m)
{
    uint8_t kind;
    struct tr_actor *a = tr__slot_get(&sys->slots, to, &kind);
    if (!a)
        return;
    if (kind != TR__SLOT_ACTOR)
        goto put;
    if (!delivered_as_message(a, m)) {
        tr__spin_lock(&a->sig_lock);
        tr__refmap_del(&a->sig.links, m->from);
        tr__spin_unlock(&a->sig_lock);
        if ((int64_t)m->a != 0)
            kill_by_link(a, (int)(int64_t)m->a);
        goto put;
    }
    tr__signal *s = malloc(sizeof *s);
    if (!s) /* nowhere to keep it: the receiver's watch is lost (rare) */
        goto put;
    *s = (tr__signal){.msg = *m};
    bool queued = false;
    tr__spin_lock(&a->sig_lock);
    if (!a->sig.exited) {
        if (a->sig.tail)
            a->sig.tail->next = s;
        else
            __atomic_store_n(&a->sig.head, s, __ATOMIC_RELEASE);
        a->sig.tail = s;
        queued = true;
    }
    tr__spin_unlock(&a->sig_lock);
    if (queued)
        tr__mailbox_notify(&a->mbox); /* wakes it like a message would */
    else
        free(s);
put:
    tr__ref_put(sys, to, a, kind);
}

bool tr__signal_take(struct tr_actor *a, tr_msg *out)
{
    while (tr__signal_pending(a)) {
        tr__spin_lock(&a->sig_lock);
        tr__signal *s = a->sig.head;
        if (s) {
            __atomic_store_n(&a->sig.head, s->next, __ATOMIC_RELEASE);
            if (!s->next)
                a->sig.tail = NULL;
            if (s->msg.tag == TR_TAG_EXIT) /* the link ends with the notice */
                tr__refmap_del(&a->sig.links, s->msg.from);
        }
        tr__spin_unlock(&a->sig_lock);
        if (!s)
            return false;
        tr_msg m = s->msg;
        free(s);
        /* Trapping may have been turned off since it was queued. */
        if (delivered_as_message(a, &m)) {
            *out = m;
            return true;
        }
        if ((int64_t)m.a != 0)
            kill_by_link(a, (int)(int64_t)m.a);
    }
    return false;
}

void tr__signal_exit(struct tr_actor *a, int reason)
{
    tr_system *sys = a->mbox.sys;
    tr_ref self = a->mbox.ref;
    tr__spin_lock(&a->sig_lock);
    a->sig.exited = true;
    tr__signals sig = a->sig;
    __atomic_store_n(&a->sig.head, NULL, __ATOMIC_RELAXED);
    a->sig.tail = NULL;
    a->sig.links = (tr__refmap){0};
    a->sig.monitors = NULL;
    a->sig.nmonitors = 0;
    tr__spin_unlock(&a->sig_lock);
    if (!sig.head && !sig.links.len && !sig.nmonitors) {
        tr__refmap_free(&sig.links);
        free(sig.monitors);
        return; /* the usual end: nobody to tell */
    }
    tr_ref few[8]; /* most actors have a link or two: no allocation */
    tr_ref *links = sig.links.len <= 8 ? few : malloc(sig.links.len * sizeof *links);
    if (links)
        tr__refmap_keys(&sig.links, links);

    for (tr__signal *s = sig.head, *next; s; s = next) {
        next = s->next;
        free(s);
    }
    /* Out of memory for the list: the linked actors are not told (rare;
     * their own exits still reach us, harmlessly, as we are gone). */
    for (size_t i = 0; links && i < sig.links.len; i++) {
        tr_msg m = {.tag = TR_TAG_EXIT, .from = self, .a = (uint64_t)(int64_t)reason};
        send_signal(sys, links[i], &m);
    }
    if (links != few)
        free(links);
    tr__refmap_free(&sig.links);
    for (uint32_t i = 0; i < sig.nmonitors; i++) {
        tr_msg m = {.tag = TR_TAG_DOWN, .from = self, .a = sig.monitors[i].id,
                    .b = (uint64_t)(int64_t)reason};
        send_signal(sys, sig.monitors[i].watcher, &m);
    }
    free(sig.monitors);
}

void tr__signal_down_now(tr_system *sys, tr_ref watcher, tr_ref target, tr_ref id)
{
    tr_msg m = {.tag = TR_TAG_DOWN, .from = target, .a = id,
                .b = (uint64_t)(int64_t)TR_ENOACTOR};
    send_signal(sys, watcher, &m);
}

bool tr__signal_unqueue_down(struct tr_actor *a, tr_ref id)
{
    bool found = false;
    tr__spin_lock(&a->sig_lock);
    for (tr__signal **p = &a->sig.head, *prev = NULL; *p; prev = *p, p = &(*p)->next) {
        tr__signal *s = *p;
        if (s->msg.tag == TR_TAG_DOWN && s->msg.a == id) {
            __atomic_store_n(p, s->next, __ATOMIC_RELAXED); /* p may be &head */
            if (a->sig.tail == s)
                a->sig.tail = prev;
            free(s);
            found = true;
            break;
        }
    }
    tr__spin_unlock(&a->sig_lock);
    return found;
}

void tr__signal_destroy(struct tr_actor *a)
{
    for (tr__signal *s = a->sig.head, *next; s; s = next) {
        next = s->next;
        free(s);
    }
    tr__refmap_free(&a->sig.links);
    free(a->sig.monitors);
    a->sig = (tr__signals){0};
}
